"""The verifier's cache of checked tokens never outlives a token's expiry."""

from __future__ import annotations

import pytest

from portcullis_shared.errors import InvalidTokenError
from portcullis_shared.jwks import StaticKeySource
from portcullis_shared.testing import TestTokens
from portcullis_shared.verifier import MAX_TOKEN_BYTES, TokenVerifier
from tests.clock import FakeClock


async def test_a_cached_token_is_refused_once_it_expires() -> None:
    tokens = TestTokens(audience="posts")
    clock = FakeClock()
    verifier = TokenVerifier(
        StaticKeySource(tokens.jwks), issuer=tokens.issuer, audience="posts", leeway=0, clock=clock
    )
    issued_at = int(clock())  # the token's second is the clock's: valid until it moves on
    token = tokens.token(subject="u", client_id="c", iat=issued_at, exp=issued_at + 1)
    first = await verifier.verify(token)
    assert await verifier.verify(token) is first  # served from the cache
    clock.advance(max(0.0, first.exp - clock()) + 0.2)
    with pytest.raises(InvalidTokenError):
        await verifier.verify(token)


async def test_a_token_failing_verification_is_not_cached() -> None:
    tokens = TestTokens(audience="posts")
    verifier = TokenVerifier(StaticKeySource(tokens.jwks), issuer=tokens.issuer, audience="billing")
    token = tokens.token(subject="u", client_id="c")
    for _ in range(2):
        with pytest.raises(InvalidTokenError):
            await verifier.verify(token)


async def test_a_token_one_character_away_from_a_cached_one_is_verified_itself() -> None:
    tokens = TestTokens(audience="posts")
    verifier = TokenVerifier(StaticKeySource(tokens.jwks), issuer=tokens.issuer, audience="posts")
    token = tokens.token(subject="u", client_id="c")
    await verifier.verify(token)
    header, payload, signature = token.split(".")
    for changed in (
        f"{header}.{payload[:-1]}{'A' if payload[-1] != 'A' else 'B'}.{signature}",
        f"{header}.{payload}.{signature[:-1]}{'A' if signature[-1] != 'A' else 'B'}",
    ):
        with pytest.raises(InvalidTokenError):
            await verifier.verify(changed)


async def test_the_cache_keeps_a_bounded_number_of_tokens_and_drops_the_oldest_first(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("portcullis_shared.verifier.VERIFIED_CACHE_SIZE", 3)
    tokens = TestTokens(audience="posts")
    verifier = TokenVerifier(StaticKeySource(tokens.jwks), issuer=tokens.issuer, audience="posts")
    issued = [tokens.token(subject=f"u{n}", client_id="c") for n in range(4)]
    first = [await verifier.verify(token) for token in issued]
    # The first was dropped when the fourth came; the other three are still cached.
    assert [
        await verifier.verify(token) is claims
        for token, claims in zip(issued[1:], first[1:], strict=True)
    ] == [True, True, True]
    assert await verifier.verify(issued[0]) is not first[0]


async def test_an_oversized_or_non_ascii_token_is_refused_before_it_is_hashed_or_cached() -> None:
    tokens = TestTokens(audience="posts")
    verifier = TokenVerifier(StaticKeySource(tokens.jwks), issuer=tokens.issuer, audience="posts")
    token = tokens.token(subject="u", client_id="c")
    for refused in (token + "A" * MAX_TOKEN_BYTES, token[:-1] + "é"):
        for _ in range(2):  # and never served from the cache the second time
            with pytest.raises(InvalidTokenError, match="malformed token"):
                await verifier.verify(refused)
