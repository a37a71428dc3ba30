"""Signing keys: which key signs, which are published, rotation without failures."""

from __future__ import annotations

import asyncio
import base64
import json
import time
import warnings
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

import pytest
from joserfc import jwt
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from portcullis_auth.db.models import SigningKey, utcnow
from portcullis_auth.keys.keyring import (
    MAX_KEY_AGE,
    RELOAD_SECONDS,
    KeyRing,
    LoadedKey,
    retired,
)
from portcullis_auth.keys.sealing import KeySealer
from portcullis_auth.keys.service import (
    ROTATION_MARGIN,
    SigningKeyService,
    generate_private_key,
)
from portcullis_auth.settings import AuthSettings
from portcullis_shared.sql import create_engine, create_sessionmaker
from tests.auth.conftest import Seed, basic_auth


async def _reread_keys(http: AsyncTestClient[Litestar]) -> None:
    """As after a quiet spell: the next request has the keys read again before it is
    answered."""
    keyring = http.app.state.runtime.keyring
    keyring._loaded_at = float("-inf")
    await http.get("/.well-known/jwks.json")
    deadline = time.monotonic() + 5
    while keyring._loaded_at == float("-inf"):
        assert time.monotonic() < deadline, "the keys were not read again"
        await asyncio.sleep(0.02)


def header_kid(token: str) -> str:
    head = token.split(".", maxsplit=1)[0]
    return str(json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))["kid"])


async def test_rotated_key_is_published_before_it_signs(
    http: AsyncTestClient[Litestar], seed: Seed, settings: AuthSettings
) -> None:
    client_id, secret = await seed.client()
    assert secret is not None
    old = (await http.get("/.well-known/jwks.json")).json()["keys"]
    assert len(old) == 1

    async def rotate(session: AsyncSession) -> SigningKey:
        service = SigningKeyService(session, KeySealer(settings.secret_key))
        return await service.rotate("RS256", settings.tokens.jwks_max_age)

    new_key = await seed.run(rotate)
    assert isinstance(new_key, SigningKey)
    assert new_key.activates_at >= utcnow() + timedelta(seconds=settings.tokens.jwks_max_age)

    await _reread_keys(http)
    published = {key["kid"] for key in (await http.get("/.well-known/jwks.json")).json()["keys"]}
    assert published == {old[0]["kid"], new_key.kid}
    token = (
        await http.post(
            "/oauth/token",
            data={"grant_type": "client_credentials"},
            headers=basic_auth(client_id, secret),
        )
    ).json()["access_token"]
    assert header_kid(token) == old[0]["kid"]


@pytest.mark.parametrize(
    ("jwks_max_age", "least"),
    [(0, 30 + 50), (2, 30 + 50), (45, 45 + 50), (300, 300 + 50)],
)
async def test_rotation_waits_as_long_as_a_jwks_cache_keeps_the_keys(
    seed: Seed, settings: AuthSettings, jwks_max_age: int, least: int
) -> None:
    """A cache keeps a JWKS for its max-age, but 30 s at least (`JWKSCache`'s floor): a
    max-age under that must not let a key sign before every cache can have seen it."""

    async def rotate(activate_in: int | None) -> SigningKey:
        async def work(session: AsyncSession) -> SigningKey:
            service = SigningKeyService(session, KeySealer(settings.secret_key))
            return await service.rotate("RS256", jwks_max_age, activate_in)

        return await seed.run(work)

    with pytest.raises(ValueError, match=f"at least {least} s before it signs"):
        await rotate(least - 1)
    started = utcnow()
    assert (await rotate(least)).activates_at >= started + timedelta(seconds=least)
    by_default = (await rotate(None)).activates_at
    assert by_default >= started + timedelta(seconds=least - 50) + ROTATION_MARGIN


async def test_jwks_kids_are_unique_and_public_only(
    http: AsyncTestClient[Litestar], seed: Seed
) -> None:
    await seed.signing_key()
    await _reread_keys(http)
    response = await http.get("/.well-known/jwks.json")
    keys = response.json()["keys"]
    assert len(keys) == 2
    assert len({key["kid"] for key in keys}) == 2
    assert all(not {"d", "p", "q", "dp", "dq", "qi"} & set(key) for key in keys)
    assert response.headers["cache-control"] == "public, max-age=300"


async def test_private_keys_are_sealed_at_rest(seed: Seed, settings: AuthSettings) -> None:
    async def rows(session: AsyncSession) -> list[SigningKey]:
        return list((await session.execute(select(SigningKey))).scalars())

    stored = await seed.run(rows)
    assert isinstance(stored, list)
    for row in stored:
        assert b"PRIVATE KEY" not in row.sealed_private_key
        assert b"PRIVATE KEY" in KeySealer(settings.secret_key).unseal(
            row.sealed_private_key, row.kid
        )


def test_key_retires_once_every_token_it_signed_has_expired() -> None:
    now = utcnow()
    old = SigningKey(kid="old", activates_at=now - timedelta(days=10))
    recent = SigningKey(kid="new", activates_at=now - timedelta(seconds=100))
    assert not retired([old, recent], 0, now, max_token_ttl=900)
    assert retired([old, recent], 0, now, max_token_ttl=60)
    assert not retired([old, recent], 1, now, max_token_ttl=60)
    assert ROTATION_MARGIN.total_seconds() == 60


CLAIMS = {
    "iss": "https://auth.example",
    "sub": "client_0123",
    "aud": "posts",
    "exp": 2_000_000_000,
    "iat": 1_999_999_100,
    "jti": "6f0c2b1e-0d3c-4a43-9a55-0f2d1b7e9c11",
    "client_id": "client_0123",
    "scope": "read-posts write-posts",
    "sid": "6f0c2b1e-0d3c-4a43-9a55-0f2d1b7e9c11",
    "note": "ünïcode",
}


def _loaded(algorithm: str) -> LoadedKey:
    private = generate_private_key(algorithm)
    return LoadedKey(
        kid="k1",
        algorithm=algorithm,
        activates_at=utcnow(),
        public_jwk=private.as_dict(private=False),
        private_key=private,
    )


def test_tokens_carry_the_claims_as_joserfc_would_serialise_them() -> None:
    key = _loaded("RS256")
    header = {"alg": "RS256", "kid": "k1", "typ": "at+jwt"}
    expected = jwt.encode(header, CLAIMS, key.private_key, algorithms=["RS256"]).split(".")
    ours = key.sign_access_token(CLAIMS).split(".")
    assert ours[1] == expected[1]  # the same claims, serialised the same way


@pytest.mark.parametrize("algorithm", ["RS256", "ES256", "EdDSA"])
def test_every_algorithm_signs_tokens_joserfc_verifies(algorithm: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # joserfc warns of "EdDSA" as an algorithm name
        key = _loaded(algorithm)
        decoded = jwt.decode(key.sign_access_token(CLAIMS), key.private_key, [algorithm])
    assert decoded.header == {"alg": algorithm, "kid": "k1", "typ": "at+jwt"}
    assert decoded.claims == CLAIMS


@asynccontextmanager
async def _keyring(
    settings: AuthSettings, pool_size: int = 2
) -> AsyncIterator[tuple[KeyRing, AsyncEngine]]:
    """A key ring over an engine of its own, its keys read."""
    engine = create_engine(settings.database.url, pool_size=pool_size)
    keyring = KeyRing(
        create_sessionmaker(engine),
        KeySealer(settings.secret_key),
        max_token_ttl=settings.tokens.max_token_ttl,
    )
    try:
        await keyring.reload()
        yield keyring, engine
    finally:
        await engine.dispose()


async def test_stale_keys_keep_signing_while_they_are_read_again(
    seed: Seed, settings: AuthSettings
) -> None:
    """With every pooled connection held by requests (one here), a request asking for
    the signing key must not wait for a connection to re-read the keys."""
    async with _keyring(settings, pool_size=1) as (keyring, engine):
        signing = await keyring.signing_key()
        keyring._loaded_at -= RELOAD_SECONDS  # due to be read again
        async with engine.connect():  # the pool's only connection, held by a busy request
            key = await asyncio.wait_for(keyring.signing_key(), timeout=1)
    assert key.kid == signing.kid


async def test_keys_older_than_the_longest_quiet_spell_are_read_before_they_serve(
    seed: Seed, settings: AuthSettings
) -> None:
    """No request came to start a background read: a key that activated meanwhile must
    sign the very next token (rotation gives every cache 60 s to see it first)."""
    async with _keyring(settings) as (keyring, _):
        newer = await seed.signing_key()
        keyring._loaded_at -= MAX_KEY_AGE
        assert (await keyring.signing_key()).kid == newer
