"""The revocation list at the resource service: Redis (fail closed) and in-memory.

The revocation list (docs/architecture.md): entries by jti and sid (present means revoked), by
user and by client ("issued at or before T", whole seconds), a marker without
which the list is not trusted, and all four checked in one round trip.
"""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis.asyncio as aioredis
from litestar.testing import AsyncTestClient

from portcullis_shared.environment import SettingsError
from portcullis_shared.errors import GuardUnavailableError
from portcullis_shared.jwks import StaticKeySource
from portcullis_shared.plugin import GuardConfig, PortcullisGuard
from portcullis_shared.revocation import (
    MemoryRevocationList,
    RedisRevocationList,
    RevocationKeys,
)
from tests.shared.conftest import (
    AUDIENCE,
    ISSUER,
    JWKSServer,
    RedisCommandProxy,
    SigningKey,
    access_claims,
    assert_invalid_token,
    assert_unavailable,
    bearer,
    claims_of,
    client_claims,
    guard_config,
    guarded_app,
    mint,
)

T = 1_767_225_600  # a whole-second cutoff


# --- RedisRevocationList -------------------------------------------------------------------


@pytest.fixture
def redis_list(redis_client: aioredis.Redis, redis_prefix: str) -> RedisRevocationList:
    return RedisRevocationList(redis_client, redis_prefix)


async def test_no_marker_fails_closed(redis_list: RedisRevocationList) -> None:
    with pytest.raises(GuardUnavailableError):
        await redis_list.is_revoked(claims_of(access_claims()))


async def test_no_marker_fails_closed_even_for_a_revoked_token(
    redis_list: RedisRevocationList, redis_client: aioredis.Redis, revocation_keys: RevocationKeys
) -> None:
    claims = claims_of(access_claims())
    await redis_client.set(revocation_keys.jti(claims.jti), "1")
    with pytest.raises(GuardUnavailableError):
        await redis_list.is_revoked(claims)


async def test_marker_present_and_no_entry_is_not_revoked(
    redis_list: RedisRevocationList, marked: None
) -> None:
    assert await redis_list.is_revoked(claims_of(access_claims())) is False
    assert await redis_list.is_revoked(claims_of(client_claims())) is False


async def test_jti_and_sid_entries_revoke(
    redis_list: RedisRevocationList,
    redis_client: aioredis.Redis,
    revocation_keys: RevocationKeys,
    marked: None,
) -> None:
    by_jti, by_sid, untouched = (claims_of(access_claims()) for _ in range(3))
    await redis_client.set(revocation_keys.jti(by_jti.jti), "1")
    await redis_client.set(revocation_keys.sid(by_sid.sid), "1")
    assert await redis_list.is_revoked(by_jti) is True
    assert await redis_list.is_revoked(by_sid) is True
    assert await redis_list.is_revoked(untouched) is False


async def test_entries_of_another_prefix_are_not_read(
    redis_client: aioredis.Redis, redis_prefix: str, marked: None
) -> None:
    claims = claims_of(access_claims())
    other = RevocationKeys(f"{redis_prefix}other:")
    await redis_client.set(other.jti(claims.jti), "1")
    assert await RedisRevocationList(redis_client, redis_prefix).is_revoked(claims) is False
    await redis_client.set(other.marker, "1")
    assert await RedisRevocationList(redis_client, other.prefix).is_revoked(claims) is True


@pytest.mark.parametrize(("iat", "revoked"), [(T - 3600, True), (T, True), (T + 1, False)])
async def test_user_cutoff_is_issued_at_or_before(
    redis_list: RedisRevocationList,
    redis_client: aioredis.Redis,
    revocation_keys: RevocationKeys,
    marked: None,
    iat: int,
    revoked: bool,
) -> None:
    claims = claims_of(access_claims(iat=iat))
    await redis_client.set(revocation_keys.user(claims.sub), T)
    assert await redis_list.is_revoked(claims) is revoked


@pytest.mark.parametrize("kind", ["user-token", "client-token"])
@pytest.mark.parametrize(("iat", "revoked"), [(T - 3600, True), (T, True), (T + 1, False)])
async def test_client_cutoff_is_issued_at_or_before(
    redis_list: RedisRevocationList,
    redis_client: aioredis.Redis,
    revocation_keys: RevocationKeys,
    marked: None,
    kind: str,
    iat: int,
    revoked: bool,
) -> None:
    raw = access_claims(iat=iat) if kind == "user-token" else client_claims(iat=iat)
    claims = claims_of(raw)
    await redis_client.set(revocation_keys.client(claims.client_id), T)
    assert await redis_list.is_revoked(claims) is revoked


async def test_marker_value_is_never_read_as_a_cutoff(
    redis_list: RedisRevocationList, redis_client: aioredis.Redis, revocation_keys: RevocationKeys
) -> None:
    """The marker holds the time of the last rebuild; tokens issued before it stay valid."""
    await redis_client.set(revocation_keys.marker, str(T + 3600))
    assert await redis_list.is_revoked(claims_of(client_claims(iat=T))) is False
    assert await redis_list.is_revoked(claims_of(access_claims(iat=T))) is False


async def test_user_cutoff_covers_only_that_user(
    redis_list: RedisRevocationList,
    redis_client: aioredis.Redis,
    revocation_keys: RevocationKeys,
    marked: None,
) -> None:
    mine, theirs = claims_of(access_claims(iat=T)), claims_of(access_claims(iat=T))
    await redis_client.set(revocation_keys.user(mine.sub), T)
    assert await redis_list.is_revoked(mine) is True
    assert await redis_list.is_revoked(theirs) is False


async def test_unreachable_redis_fails_closed() -> None:
    client = aioredis.Redis.from_url(
        "redis://127.0.0.1:1/0", socket_timeout=1, socket_connect_timeout=1
    )
    try:
        with pytest.raises(GuardUnavailableError):
            await RedisRevocationList(client).is_revoked(claims_of(access_claims()))
    finally:
        await client.aclose()


# --- MemoryRevocationList: the same semantics ---------------------------------------------


async def test_memory_list_jti_and_sid() -> None:
    revocations = MemoryRevocationList()
    by_jti, by_sid, untouched = (claims_of(access_claims()) for _ in range(3))
    revocations.revoke_token(by_jti.jti, time.time() + 900)
    revocations.revoke_grant(by_sid.sid, time.time() + 900)
    assert await revocations.is_revoked(by_jti) is True
    assert await revocations.is_revoked(by_sid) is True
    assert await revocations.is_revoked(untouched) is False


@pytest.mark.parametrize(("iat", "revoked"), [(T - 3600, True), (T, True), (T + 1, False)])
async def test_memory_list_user_cutoff_is_issued_at_or_before(iat: int, revoked: bool) -> None:
    revocations = MemoryRevocationList()
    claims = claims_of(access_claims(iat=iat))
    revocations.revoke_user(claims.sub, T)
    assert await revocations.is_revoked(claims) is revoked
    assert await revocations.is_revoked(claims_of(access_claims(iat=iat))) is False


@pytest.mark.parametrize("kind", ["user-token", "client-token"])
@pytest.mark.parametrize(("iat", "revoked"), [(T - 3600, True), (T, True), (T + 1, False)])
async def test_memory_list_client_cutoff_is_issued_at_or_before(
    kind: str, iat: int, revoked: bool
) -> None:
    revocations = MemoryRevocationList()
    raw = access_claims(iat=iat) if kind == "user-token" else client_claims(iat=iat)
    claims = claims_of(raw)
    revocations.revoke_client(claims.client_id, T)
    assert await revocations.is_revoked(claims) is revoked


async def test_memory_list_user_cutoff_does_not_touch_a_client_token() -> None:
    revocations = MemoryRevocationList()
    claims = claims_of(client_claims(iat=T))
    revocations.revoke_user(claims.sub, T)
    assert await revocations.is_revoked(claims) is False


# --- at the HTTP level ----------------------------------------------------------------------


def redis_guard(
    jwks_server: JWKSServer,
    redis_url: str,
    redis_prefix: str,
    *,
    feed: bool = False,
    **overrides: Any,
) -> PortcullisGuard:
    """The feed is off unless asked for: these tests write entries unannounced."""
    return PortcullisGuard(
        guard_config(
            jwks_url=jwks_server.url,
            redis_url=redis_url,
            redis_prefix=redis_prefix,
            revocation_feed=feed,
            **overrides,
        )
    )


@pytest.mark.parametrize("feed", [False, True], ids=["list", "feed"])
async def test_http_no_marker_is_503_with_retry_after(
    feed: bool, jwks_server: JWKSServer, rsa_key: SigningKey, redis_url: str, redis_prefix: str
) -> None:
    async with AsyncTestClient(
        app=guarded_app(redis_guard(jwks_server, redis_url, redis_prefix, feed=feed))
    ) as http:
        assert_unavailable(await http.get("/api/me", headers=bearer(mint(rsa_key))))


async def test_http_marker_lost_then_restored(
    jwks_server: JWKSServer,
    rsa_key: SigningKey,
    redis_url: str,
    redis_prefix: str,
    redis_client: aioredis.Redis,
    revocation_keys: RevocationKeys,
    marked: None,
) -> None:
    """A lost or emptied Redis never resurrects a revoked token: no marker, no service."""
    claims = access_claims()
    token = mint(rsa_key, claims)
    async with AsyncTestClient(
        app=guarded_app(redis_guard(jwks_server, redis_url, redis_prefix))
    ) as http:
        await redis_client.set(revocation_keys.jti(claims["jti"]), "1")
        assert_invalid_token(await http.get("/api/me", headers=bearer(token)))
        # Redis lost its data: the entry and the marker are gone together.
        await redis_client.delete(revocation_keys.marker, revocation_keys.jti(claims["jti"]))
        assert_unavailable(await http.get("/api/me", headers=bearer(token)))
        assert_unavailable(await http.get("/api/me", headers=bearer(mint(rsa_key))))
        await redis_client.set(revocation_keys.jti(claims["jti"]), "1")  # rebuilt...
        await redis_client.set(revocation_keys.marker, "1")  # ...then marked
        assert_invalid_token(await http.get("/api/me", headers=bearer(token)))
        response = await http.get("/api/me", headers=bearer(mint(rsa_key)))
        assert response.status_code == 200, response.text


@pytest.mark.parametrize("feed", [False, True], ids=["list", "feed"])
async def test_http_unreachable_redis_is_503_with_retry_after(
    feed: bool, jwks_server: JWKSServer, rsa_key: SigningKey
) -> None:
    guard = redis_guard(jwks_server, "redis://127.0.0.1:1/0", "portcullis:", feed=feed)
    async with AsyncTestClient(app=guarded_app(guard)) as http:
        started = time.monotonic()
        response = await http.get("/api/me", headers=bearer(mint(rsa_key)))
        assert_unavailable(response)
        assert time.monotonic() - started < 3
        assert (await http.get("/healthz")).status_code == 200


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A TCP port on loopback that accepts connections and never answers (a hung Redis)."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.1)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            accepted.append(connection)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"redis://127.0.0.1:{listener.getsockname()[1]}/0"
    finally:
        stop.set()
        thread.join(timeout=5)
        for connection in accepted:
            connection.close()
        listener.close()


@pytest.mark.parametrize("feed", [False, True], ids=["list", "feed"])
async def test_http_hung_redis_is_503_within_bounded_time(
    feed: bool, jwks_server: JWKSServer, rsa_key: SigningKey, silent_server: str
) -> None:
    guard = redis_guard(jwks_server, silent_server, "portcullis:", feed=feed)
    async with AsyncTestClient(app=guarded_app(guard)) as http:
        started = time.monotonic()
        response = await http.get("/api/me", headers=bearer(mint(rsa_key)))
        assert_unavailable(response)
        assert time.monotonic() - started < 5


async def test_http_revocation_check_is_one_mget_round_trip(
    jwks_server: JWKSServer,
    rsa_key: SigningKey,
    redis_proxy: RedisCommandProxy,
    redis_prefix: str,
    revocation_keys: RevocationKeys,
    marked: None,
) -> None:
    """Each request costs Redis exactly one command: an MGET of marker, jti, sid, user, client.

    The guard's own connection goes through a counting proxy on loopback, so
    the count is exact whatever else uses the same Redis server.
    """
    guard = redis_guard(jwks_server, redis_proxy.url, redis_prefix)
    async with AsyncTestClient(app=guarded_app(guard)) as http:
        assert redis_proxy.commands == []
        first = access_claims()
        assert (await http.get("/api/me", headers=bearer(mint(rsa_key, first)))).status_code == 200
        setup = redis_proxy.commands
        assert setup[-1][0].upper() == b"MGET"
        assert {command[0].upper() for command in setup[:-1]} <= {
            b"HELLO",
            b"CLIENT",
            b"SELECT",
            b"AUTH",
        }, setup

        for claims in (access_claims(), client_claims(), access_claims(scope="")):
            before = len(redis_proxy.commands)
            response = await http.get("/api/me", headers=bearer(mint(rsa_key, claims)))
            assert response.status_code == 200, response.text
            issued = redis_proxy.commands[before:]
            assert len(issued) == 1, issued
            name, *keys = issued[0]
            assert name.upper() == b"MGET"
            expected = {
                revocation_keys.marker,
                revocation_keys.jti(claims["jti"]),
                revocation_keys.sid(claims["sid"]),
                revocation_keys.client(claims["client_id"]),
            }
            if claims["sub"] != claims["client_id"]:
                expected.add(revocation_keys.user(claims["sub"]))
            assert {key.decode() for key in keys} == expected

        # A forged token costs Redis nothing: the signature is checked first.
        before = len(redis_proxy.commands)
        forged = mint(SigningKey(rsa_key.key, kid="unknown", alg="RS256"))
        assert_invalid_token(await http.get("/api/me", headers=bearer(forged)))
        assert_invalid_token(await http.get("/api/me", headers=bearer("a.b.c")))
        assert redis_proxy.commands[before:] == []


def test_a_guard_with_no_revocation_list_refuses_to_start(rsa_key: SigningKey) -> None:
    # An in-process list that nothing writes to would accept every revoked token.
    with pytest.raises(ValueError, match="redis_url"):
        PortcullisGuard(guard_config(), keys=StaticKeySource(rsa_key.jwks()))
    with pytest.raises(SettingsError, match="PORTCULLIS_REDIS_URL"):
        GuardConfig.from_env(
            {
                "PORTCULLIS_ISSUER": ISSUER,
                "PORTCULLIS_AUDIENCE": AUDIENCE,
                "PORTCULLIS_JWKS_URL": "http://127.0.0.1:1/jwks.json",
            }
        )


async def test_http_in_memory_list_handed_to_the_guard(rsa_key: SigningKey) -> None:
    guard = PortcullisGuard(
        guard_config(), keys=StaticKeySource(rsa_key.jwks()), revocations=MemoryRevocationList()
    )
    assert isinstance(guard.revocations, MemoryRevocationList)
    claims = access_claims(iat=int(time.time()) - 5)
    token = mint(rsa_key, claims)
    async with AsyncTestClient(app=guarded_app(guard)) as http:
        assert (await http.get("/api/me", headers=bearer(token))).status_code == 200
        guard.revocations.revoke_user(claims["sub"], claims["iat"])
        assert_invalid_token(await http.get("/api/me", headers=bearer(token)))
        fresh = mint(rsa_key, access_claims(sub=claims["sub"], iat=claims["iat"] + 1))
        assert (await http.get("/api/me", headers=bearer(fresh))).status_code == 200
        other = str(uuid.uuid4())
        guard.revocations.revoke_token(other, time.time() + 60)
        assert (await http.get("/api/me", headers=bearer(fresh))).status_code == 200
