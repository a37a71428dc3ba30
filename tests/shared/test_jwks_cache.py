"""JWKSCache against a real JWKS server on loopback (docs/security.md, faults).

The server is a thread serving HTTP on 127.0.0.1: it counts requests, can
switch its key set, answer slowly, redirect, or go down (its port then
refuses connections). The cache's time is a test clock: max-age, cooldown and
max-stale pass when a test moves it on, not while it sleeps.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from joserfc.jwk import OctKey, RSAKey
from litestar.testing import AsyncTestClient

from portcullis_shared.errors import GuardUnavailableError, InvalidTokenError
from portcullis_shared.jwks import JWKSCache, parse_jwks
from portcullis_shared.plugin import PortcullisGuard
from portcullis_shared.verifier import TokenVerifier
from tests.clock import FakeClock
from tests.shared.conftest import (
    AUDIENCE,
    ISSUER,
    JWKSServer,
    SigningKey,
    access_claims,
    assert_invalid_token,
    assert_unavailable,
    bearer,
    guard_config,
    guarded_app,
    header_for,
    jwks_of,
    mint,
    sign,
)

MakeCache = Callable[..., JWKSCache]


@pytest.fixture
def clock() -> FakeClock:
    """The caches' clock: it moves only when the test moves it."""
    return FakeClock()


@pytest.fixture
async def make_cache(clock: FakeClock) -> AsyncIterator[MakeCache]:
    """JWKSCache instances on the test's clock, closed after the test."""
    caches: list[JWKSCache] = []

    def make(url: str, **options: Any) -> JWKSCache:
        cache = JWKSCache(url, clock=clock, **options)
        caches.append(cache)
        return cache

    yield make
    for cache in caches:
        await cache.close()


async def lookup_all(cache: JWKSCache, kids: list[str]) -> list[Any]:
    return await asyncio.gather(*(cache.get_key(kid) for kid in kids), return_exceptions=True)


# --- loading and freshness ---------------------------------------------------------------


async def test_keys_load_at_start(
    make_cache: MakeCache, jwks_server: JWKSServer, rsa_key: SigningKey
) -> None:
    cache = make_cache(jwks_server.url)
    assert jwks_server.requests == 0
    await cache.start()
    assert jwks_server.requests == 1
    key, alg = await cache.get_key(rsa_key.kid)
    assert alg == "RS256"
    assert isinstance(key, RSAKey)
    assert not key.is_private
    assert key.thumbprint() == rsa_key.key.thumbprint()
    for _ in range(20):
        await cache.get_key(rsa_key.kid)
    assert jwks_server.requests == 1


async def test_cache_verifies_a_genuine_token(
    make_cache: MakeCache, jwks_server: JWKSServer, rsa_key: SigningKey
) -> None:
    cache = make_cache(jwks_server.url)
    await cache.start()
    verifier = TokenVerifier(cache, issuer=ISSUER, audience=AUDIENCE)
    claims = access_claims()
    verified = await verifier.verify(mint(rsa_key, claims))
    assert verified.jti == claims["jti"]


async def test_cache_control_max_age_is_honoured(
    make_cache: MakeCache, clock: FakeClock, jwks_server: JWKSServer, rsa_key: SigningKey
) -> None:
    jwks_server.cache_control = "public, max-age=2"
    cache = make_cache(jwks_server.url, min_ttl=0.1, cooldown=0.05)
    await cache.start()
    clock.advance(0.5)
    await cache.get_key(rsa_key.kid)
    assert jwks_server.requests == 1  # still fresh
    clock.advance(1.8)
    await cache.get_key(rsa_key.kid)
    assert jwks_server.requests == 2  # max-age passed: refetched
    await cache.get_key(rsa_key.kid)
    assert jwks_server.requests == 2


@pytest.mark.parametrize("cache_control", ["max-age=0", "no-cache", None])
async def test_min_ttl_clamps_a_short_or_missing_max_age(
    make_cache: MakeCache,
    clock: FakeClock,
    jwks_server: JWKSServer,
    rsa_key: SigningKey,
    cache_control: str | None,
) -> None:
    jwks_server.cache_control = cache_control
    cache = make_cache(jwks_server.url, min_ttl=1.5, cooldown=0.05)
    await cache.start()
    for _ in range(5):
        clock.advance(0.1)
        await cache.get_key(rsa_key.kid)
    assert jwks_server.requests == 1
    clock.advance(1.2)
    await cache.get_key(rsa_key.kid)
    assert jwks_server.requests == 2


async def test_max_ttl_clamps_a_long_max_age(
    make_cache: MakeCache, clock: FakeClock, jwks_server: JWKSServer, rsa_key: SigningKey
) -> None:
    jwks_server.cache_control = "max-age=31536000"
    cache = make_cache(jwks_server.url, min_ttl=0.1, max_ttl=0.5, cooldown=0.05)
    await cache.start()
    clock.advance(0.7)
    await cache.get_key(rsa_key.kid)
    assert jwks_server.requests == 2


# --- unknown kids: one fetch per cooldown --------------------------------------------------


async def test_flood_of_unknown_kids_costs_at_most_one_fetch_per_cooldown(
    make_cache: MakeCache, clock: FakeClock, jwks_server: JWKSServer
) -> None:
    cache = make_cache(jwks_server.url, cooldown=1.0)
    await cache.start()
    assert jwks_server.requests == 1
    flood = [f"forged-{n}" for n in range(200)]

    results = await lookup_all(cache, flood)
    assert all(isinstance(result, InvalidTokenError) for result in results), results[:3]
    assert jwks_server.requests == 1  # within the cooldown of the start-up fetch

    clock.advance(1.1)
    jwks_server.delay = 0.2  # the fetch stays in flight while the flood arrives
    results = await lookup_all(cache, flood)
    assert all(isinstance(result, InvalidTokenError) for result in results), results[:3]
    assert jwks_server.requests == 2

    results = await lookup_all(cache, [f"more-{n}" for n in range(200)])
    assert all(isinstance(result, InvalidTokenError) for result in results)
    assert jwks_server.requests == 2
    assert cache.fetch_count == 2


async def test_concurrent_misses_share_one_fetch(
    make_cache: MakeCache,
    clock: FakeClock,
    jwks_server: JWKSServer,
    rsa_key: SigningKey,
    second_rsa_key: SigningKey,
) -> None:
    cache = make_cache(jwks_server.url, cooldown=0.3)
    await cache.start()
    jwks_server.document = jwks_of(rsa_key, second_rsa_key)
    jwks_server.delay = 0.3
    clock.advance(0.4)

    results = await lookup_all(cache, [second_rsa_key.kid] * 50)
    failures = [result for result in results if isinstance(result, BaseException)]
    assert failures == []
    assert {result[0].thumbprint() for result in results} == {second_rsa_key.key.thumbprint()}
    assert jwks_server.requests == 2


async def test_rotated_key_is_found_after_the_cooldown(
    make_cache: MakeCache,
    clock: FakeClock,
    jwks_server: JWKSServer,
    rsa_key: SigningKey,
    second_rsa_key: SigningKey,
) -> None:
    cache = make_cache(jwks_server.url, cooldown=0.5)
    await cache.start()
    jwks_server.document = jwks_of(rsa_key, second_rsa_key)
    with pytest.raises(InvalidTokenError):
        await cache.get_key(second_rsa_key.kid)  # within the cooldown: not refetched
    assert jwks_server.requests == 1
    clock.advance(0.6)
    key, _ = await cache.get_key(second_rsa_key.kid)
    assert key.thumbprint() == second_rsa_key.key.thumbprint()
    old, _ = await cache.get_key(rsa_key.kid)
    assert old.thumbprint() == rsa_key.key.thumbprint()
    assert jwks_server.requests == 2


async def test_rotation_overlap_has_no_failed_verification(
    make_cache: MakeCache,
    clock: FakeClock,
    jwks_server: JWKSServer,
    rsa_key: SigningKey,
    second_rsa_key: SigningKey,
) -> None:
    """The new key is published a max-age before it signs: no token of either key fails."""
    jwks_server.cache_control = "max-age=1"
    cache = make_cache(jwks_server.url, min_ttl=0.1, cooldown=0.5)
    await cache.start()
    verifier = TokenVerifier(cache, issuer=ISSUER, audience=AUDIENCE)
    jwks_server.document = jwks_of(rsa_key, second_rsa_key)  # `keys rotate`: published first
    deadline = clock() + 1.3
    while clock() < deadline:  # old key signs during the max-age
        await verifier.verify(mint(rsa_key))
        clock.advance(0.05)
    for _ in range(10):  # new key signs; old tokens still live
        await verifier.verify(mint(second_rsa_key))
        await verifier.verify(mint(rsa_key))
    assert jwks_server.requests == 2


# --- the auth service unreachable ---------------------------------------------------------


async def test_cached_keys_work_while_the_server_is_down_until_max_stale(
    make_cache: MakeCache, clock: FakeClock, jwks_server: JWKSServer, rsa_key: SigningKey
) -> None:
    jwks_server.cache_control = "max-age=0"
    cache = make_cache(jwks_server.url, min_ttl=0.1, cooldown=0.1, max_stale=1.0, timeout=0.5)
    await cache.start()
    jwks_server.stop()
    deadline = clock() + 0.7
    while clock() < deadline:
        key, _ = await cache.get_key(rsa_key.kid)
        assert key.thumbprint() == rsa_key.key.thumbprint()
        clock.advance(0.05)
    assert cache.fetch_count > 1  # it did try to refresh
    clock.advance(0.5)
    with pytest.raises(GuardUnavailableError):
        await cache.get_key(rsa_key.kid)
    with pytest.raises(GuardUnavailableError):
        await cache.get_key("forged")

    jwks_server.start()  # back on the same port
    clock.advance(0.15)
    key, _ = await cache.get_key(rsa_key.kid)
    assert key.thumbprint() == rsa_key.key.thumbprint()


async def test_unknown_kid_while_down_with_fresh_cache_is_invalid_not_unavailable(
    make_cache: MakeCache, clock: FakeClock, jwks_server: JWKSServer, rsa_key: SigningKey
) -> None:
    cache = make_cache(jwks_server.url, cooldown=0.1, timeout=0.5)
    await cache.start()
    jwks_server.stop()
    clock.advance(0.15)
    with pytest.raises(InvalidTokenError):
        await cache.get_key("forged")
    await cache.get_key(rsa_key.kid)


async def test_keys_older_than_max_stale_are_refreshed_while_the_server_is_up(
    make_cache: MakeCache, clock: FakeClock, jwks_server: JWKSServer, rsa_key: SigningKey
) -> None:
    """max_stale bounds how long keys serve *without* the auth service; with it up, they serve."""
    cache = make_cache(jwks_server.url, min_ttl=30.0, cooldown=0.1, max_stale=0.5)
    await cache.start()
    clock.advance(0.7)
    key, _ = await cache.get_key(rsa_key.kid)
    assert key.thumbprint() == rsa_key.key.thumbprint()
    assert jwks_server.requests == 2


async def test_nothing_cached_and_server_down_fails_closed(
    make_cache: MakeCache, clock: FakeClock, jwks_server: JWKSServer, rsa_key: SigningKey
) -> None:
    jwks_server.stop()
    cache = make_cache(jwks_server.url, cooldown=0.2, timeout=0.5)
    await cache.start()  # logged, not fatal
    for kid in (rsa_key.kid, "forged"):
        with pytest.raises(GuardUnavailableError):
            await cache.get_key(kid)
    jwks_server.start()
    clock.advance(0.25)
    key, _ = await cache.get_key(rsa_key.kid)
    assert key.thumbprint() == rsa_key.key.thumbprint()


def holds_keys(cache: JWKSCache) -> bool:
    """`cache.has_keys`, read afresh (a property the type checker would take as fixed)."""
    return cache.has_keys


async def test_keys_arrive_soon_after_the_server_comes_up(
    make_cache: MakeCache, jwks_server: JWKSServer, rsa_key: SigningKey
) -> None:
    """A resource service started before the auth service keeps trying in the background:
    no token has to come along, and no cooldown (here an hour that never passes) waits."""
    jwks_server.stop()
    cache = make_cache(jwks_server.url, cooldown=3600, timeout=0.5, retry_interval=0.05)
    await cache.start()
    assert not holds_keys(cache)
    with pytest.raises(GuardUnavailableError):
        await cache.get_key(rsa_key.kid)
    jwks_server.start()
    for _ in range(200):
        if holds_keys(cache):
            break
        await asyncio.sleep(0.01)
    assert holds_keys(cache)
    key, _ = await cache.get_key(rsa_key.kid)
    assert key.thumbprint() == rsa_key.key.thumbprint()
    requests = jwks_server.requests
    await asyncio.sleep(0.2)
    assert jwks_server.requests == requests  # held: the retries stop


async def test_keys_that_never_arrive_are_retried_until_close(
    make_cache: MakeCache, jwks_server: JWKSServer
) -> None:
    jwks_server.stop()
    cache = make_cache(jwks_server.url, timeout=0.5, retry_interval=0.05)
    await cache.start()
    await cache.close()  # stops the retries
    jwks_server.start()
    await asyncio.sleep(0.2)
    assert jwks_server.requests == 0
    assert not cache.has_keys


@pytest.mark.parametrize("status", [500, 503, 404])
async def test_error_answer_from_the_server_keeps_cached_keys(
    make_cache: MakeCache,
    clock: FakeClock,
    jwks_server: JWKSServer,
    rsa_key: SigningKey,
    status: int,
) -> None:
    jwks_server.cache_control = "max-age=0"
    cache = make_cache(jwks_server.url, min_ttl=0.1, cooldown=0.1)
    await cache.start()
    jwks_server.status = status
    clock.advance(0.15)
    await cache.get_key(rsa_key.kid)
    assert jwks_server.requests == 2
    key, _ = await cache.get_key(rsa_key.kid)
    assert key.thumbprint() == rsa_key.key.thumbprint()


@pytest.mark.parametrize(
    "document", [{"keys": "none"}, {"not": "a jwks"}, ["keys"], "garbage"], ids=repr
)
async def test_malformed_document_keeps_cached_keys(
    make_cache: MakeCache,
    clock: FakeClock,
    jwks_server: JWKSServer,
    rsa_key: SigningKey,
    document: Any,
) -> None:
    jwks_server.cache_control = "max-age=0"
    cache = make_cache(jwks_server.url, min_ttl=0.1, cooldown=0.1)
    await cache.start()
    jwks_server.document = document
    clock.advance(0.15)
    key, _ = await cache.get_key(rsa_key.kid)
    assert jwks_server.requests == 2
    assert key.thumbprint() == rsa_key.key.thumbprint()


async def test_redirect_is_not_followed(
    make_cache: MakeCache, jwks_server: JWKSServer, trap_server: JWKSServer
) -> None:
    """Keys come only from the configured URL, not from wherever it redirects."""
    jwks_server.status = 302
    jwks_server.location = trap_server.url
    cache = make_cache(jwks_server.url, cooldown=0.1)
    await cache.start()
    assert jwks_server.requests == 1
    assert trap_server.requests == 0
    with pytest.raises(GuardUnavailableError):
        await cache.get_key("key-2025-01")
    assert trap_server.requests == 0


# --- what the document may hold ------------------------------------------------------------


async def test_duplicate_kid_is_dropped(
    make_cache: MakeCache,
    jwks_server: JWKSServer,
    rsa_key: SigningKey,
    attacker_key: SigningKey,
    second_rsa_key: SigningKey,
) -> None:
    assert attacker_key.kid == rsa_key.kid
    jwks_server.document = jwks_of(rsa_key, attacker_key, second_rsa_key)
    cache = make_cache(jwks_server.url, cooldown=60)
    await cache.start()
    with pytest.raises(InvalidTokenError):
        await cache.get_key(rsa_key.kid)
    key, _ = await cache.get_key(second_rsa_key.kid)
    assert key.thumbprint() == second_rsa_key.key.thumbprint()
    verifier = TokenVerifier(cache, issuer=ISSUER, audience=AUDIENCE)
    for signer in (rsa_key, attacker_key):
        with pytest.raises(InvalidTokenError):
            await verifier.verify(mint(signer))
    await verifier.verify(mint(second_rsa_key))


async def test_same_key_listed_twice_under_one_kid_is_still_ambiguous(
    rsa_key: SigningKey,
) -> None:
    assert parse_jwks({"keys": [rsa_key.public_jwk(), rsa_key.public_jwk()]}) == {}


async def test_symmetric_oct_keys_are_ignored(
    make_cache: MakeCache, jwks_server: JWKSServer, rsa_key: SigningKey
) -> None:
    secret = OctKey.generate_key(256)
    oct_entry = {**secret.as_dict(private=True), "kid": "shared-secret", "alg": "HS256"}
    oct_shadow = {**secret.as_dict(private=True), "kid": rsa_key.kid, "alg": "HS256"}
    jwks_server.document = {"keys": [oct_entry, oct_shadow, rsa_key.public_jwk()]}
    cache = make_cache(jwks_server.url, cooldown=60)
    await cache.start()
    with pytest.raises(InvalidTokenError):
        await cache.get_key("shared-secret")
    key, _ = await cache.get_key(rsa_key.kid)  # the oct entry neither shadows nor spoils it
    assert isinstance(key, RSAKey)

    verifier = TokenVerifier(cache, issuer=ISSUER, audience=AUDIENCE)
    hs_signer = SigningKey(secret, kid="shared-secret", alg="HS256")  # type: ignore[arg-type]
    for kid in ("shared-secret", rsa_key.kid):
        token = sign(header_for(hs_signer, kid=kid), access_claims(), hs_signer)
        with pytest.raises(InvalidTokenError):
            await verifier.verify(token)


async def test_encryption_keys_are_ignored(
    make_cache: MakeCache, jwks_server: JWKSServer, rsa_key: SigningKey
) -> None:
    jwks_server.document = {"keys": [rsa_key.public_jwk(use="enc")]}
    cache = make_cache(jwks_server.url, cooldown=60)
    await cache.start()
    with pytest.raises(InvalidTokenError):
        await cache.get_key(rsa_key.kid)


async def test_private_members_are_never_used(
    make_cache: MakeCache, jwks_server: JWKSServer, rsa_key: SigningKey
) -> None:
    """A JWKS that leaks private members yields public keys only (the members are dropped)."""
    leaked = {**rsa_key.key.as_dict(private=True), "kid": rsa_key.kid, "alg": "RS256"}
    assert "d" in leaked
    jwks_server.document = {"keys": [leaked]}
    cache = make_cache(jwks_server.url, cooldown=60)
    await cache.start()
    key, _ = await cache.get_key(rsa_key.kid)
    assert not key.is_private
    assert "d" not in key.as_dict()
    await TokenVerifier(cache, issuer=ISSUER, audience=AUDIENCE).verify(mint(rsa_key))


async def test_bogus_private_members_do_not_spoil_the_public_key(
    make_cache: MakeCache, jwks_server: JWKSServer, rsa_key: SigningKey
) -> None:
    bogus = dict.fromkeys(("d", "p", "q", "dp", "dq", "qi"), "AQAB")
    jwks_server.document = {"keys": [rsa_key.public_jwk(**bogus)]}
    cache = make_cache(jwks_server.url, cooldown=60)
    await cache.start()
    key, _ = await cache.get_key(rsa_key.kid)
    assert not key.is_private
    await TokenVerifier(cache, issuer=ISSUER, audience=AUDIENCE).verify(mint(rsa_key))


async def test_malformed_entries_are_skipped_not_fatal(
    make_cache: MakeCache, jwks_server: JWKSServer, rsa_key: SigningKey
) -> None:
    jwks_server.document = {
        "keys": [
            "not an object",
            {"kty": "RSA", "kid": "broken", "n": "!!", "e": "AQAB"},
            {"kty": "RSA", "kid": 7, "n": "AQAB", "e": "AQAB"},
            {"kty": "XYZ", "kid": "alien"},
            rsa_key.public_jwk(),
        ]
    }
    cache = make_cache(jwks_server.url, cooldown=60)
    await cache.start()
    await cache.get_key(rsa_key.kid)
    for kid in ("broken", "alien", "7"):
        with pytest.raises(InvalidTokenError):
            await cache.get_key(kid)


# --- through the plugin, at the HTTP level -------------------------------------------------


async def test_http_nothing_cached_and_jwks_down_is_503_with_retry_after(
    jwks_server: JWKSServer,
    rsa_key: SigningKey,
    redis_url: str,
    redis_prefix: str,
    marked: None,
) -> None:
    jwks_server.stop()
    guard = PortcullisGuard(
        guard_config(jwks_url=jwks_server.url, redis_url=redis_url, redis_prefix=redis_prefix)
    )
    async with AsyncTestClient(app=guarded_app(guard)) as http:
        assert_unavailable(await http.get("/api/me", headers=bearer(mint(rsa_key))))
        forged_kid = sign(header_for(rsa_key, kid="forged"), access_claims(), rsa_key)
        assert_unavailable(await http.get("/api/me", headers=bearer(forged_kid)))
        # Garbage is refused before any key lookup; public routes still answer.
        assert_invalid_token(await http.get("/api/me", headers=bearer("a.b.c")))
        assert (await http.get("/healthz")).status_code == 200


async def test_http_cached_keys_serve_until_max_stale_then_503(
    clock: FakeClock,
    jwks_server: JWKSServer,
    rsa_key: SigningKey,
    redis_url: str,
    redis_prefix: str,
    marked: None,
) -> None:
    guard = PortcullisGuard(
        guard_config(
            jwks_url=jwks_server.url,
            redis_url=redis_url,
            redis_prefix=redis_prefix,
            jwks_cooldown=0.2,
            jwks_max_stale=1.0,
        ),
        jwks_clock=clock,
    )
    async with AsyncTestClient(app=guarded_app(guard)) as http:
        jwks_server.stop()
        response = await http.get("/api/me", headers=bearer(mint(rsa_key)))
        assert response.status_code == 200, response.text
        clock.advance(1.1)
        assert_unavailable(await http.get("/api/me", headers=bearer(mint(rsa_key))))
        jwks_server.start()  # the auth service is back: so is the resource service
        clock.advance(0.25)
        response = await http.get("/api/me", headers=bearer(mint(rsa_key)))
        assert response.status_code == 200, response.text


async def test_http_flood_of_forged_kids_costs_at_most_one_fetch(
    jwks_server: JWKSServer,
    rsa_key: SigningKey,
    redis_url: str,
    redis_prefix: str,
    marked: None,
) -> None:
    guard = PortcullisGuard(
        guard_config(jwks_url=jwks_server.url, redis_url=redis_url, redis_prefix=redis_prefix)
    )
    async with AsyncTestClient(app=guarded_app(guard)) as http:
        assert jwks_server.requests == 1
        for n in range(200):
            token = sign(header_for(rsa_key, kid=f"forged-{n}"), access_claims(), rsa_key)
            assert_invalid_token(await http.get("/api/me", headers=bearer(token)))
        assert jwks_server.requests <= 2
        response = await http.get("/api/me", headers=bearer(mint(rsa_key)))
        assert response.status_code == 200
