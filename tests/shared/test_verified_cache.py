"""The verifier's cache of checked tokens never outlives a token's expiry."""

from __future__ import annotations

import asyncio
import time

import pytest

from portcullis_shared.errors import InvalidTokenError
from portcullis_shared.jwks import StaticKeySource
from portcullis_shared.testing import TestTokens
from portcullis_shared.verifier import TokenVerifier


async def test_a_cached_token_is_refused_once_it_expires() -> None:
    tokens = TestTokens(audience="posts")
    verifier = TokenVerifier(
        StaticKeySource(tokens.jwks), issuer=tokens.issuer, audience="posts", leeway=0
    )
    token = tokens.token(subject="u", client_id="c", ttl=1)
    first = await verifier.verify(token)
    assert await verifier.verify(token) is first  # served from the cache
    await asyncio.sleep(max(0.0, first.exp - time.time()) + 0.2)
    with pytest.raises(InvalidTokenError):
        await verifier.verify(token)


async def test_a_token_failing_verification_is_not_cached() -> None:
    tokens = TestTokens(audience="posts")
    verifier = TokenVerifier(StaticKeySource(tokens.jwks), issuer=tokens.issuer, audience="billing")
    token = tokens.token(subject="u", client_id="c")
    for _ in range(2):
        with pytest.raises(InvalidTokenError):
            await verifier.verify(token)
