"""The revocation feed: a local filter, fed by Redis pub/sub, that spares the Redis
round trip for tokens it proves unrevoked.

The revocation list (docs/architecture.md) keeps its promises with the feed on: a revocation is
refused within a second; a lost or stale feed, or a reconnect before a full
resync, falls back to asking Redis on every request; memory stays bounded.
Every test runs against the real Redis; the guard's own connections go through
a counting proxy where the test needs to know what reached Redis.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import partial

import pytest
import redis.asyncio as aioredis
from litestar.testing import AsyncTestClient

from portcullis_shared.bloom import BloomFilter
from portcullis_shared.environment import SettingsError
from portcullis_shared.errors import GuardUnavailableError
from portcullis_shared.jwks import StaticKeySource
from portcullis_shared.plugin import GuardConfig, PortcullisGuard
from portcullis_shared.revocation import RedisRevocationList, RevocationKeys
from portcullis_shared.revocation_feed import FollowedRevocationList
from tests.shared.conftest import (
    AUDIENCE,
    ISSUER,
    JWKSServer,
    RedisCommandProxy,
    SigningKey,
    access_claims,
    assert_invalid_token,
    bearer,
    claims_of,
    client_claims,
    guard_config,
    guarded_app,
    mint,
)

READS = {b"MGET", b"GET", b"EXISTS"}


async def revoke(
    redis: aioredis.Redis, keys: RevocationKeys, *entries: tuple[str, str], value: object = 1
) -> None:
    """What every writer of the list does: the entries, then one announcement of them all."""
    async with redis.pipeline(transaction=False) as pipe:
        for kind, subject in entries:
            pipe.set(keys.entry(kind, subject), str(value), ex=3600)
        pipe.publish(keys.feed, keys.announcement(keys.item(*entry) for entry in entries))
        await pipe.execute()


async def eventually(condition: Callable[[], Awaitable[bool] | bool], within: float) -> float:
    """Seconds until `condition` holds; fails after `within`."""
    started = time.monotonic()
    while True:
        outcome = condition()
        if not isinstance(outcome, bool):
            outcome = await outcome
        if outcome:
            return time.monotonic() - started
        assert time.monotonic() - started < within, f"not within {within} s"
        await asyncio.sleep(0.01)


def reads(proxy: RedisCommandProxy, since: int) -> list[list[bytes]]:
    return [command for command in proxy.commands[since:] if command[0].upper() in READS]


@pytest.fixture
async def followed(
    redis_proxy: RedisCommandProxy, redis_prefix: str, marked: None
) -> AsyncIterator[FollowedRevocationList]:
    redis = aioredis.Redis.from_url(redis_proxy.url, socket_timeout=1, socket_connect_timeout=1)
    revocations = FollowedRevocationList(redis, redis_prefix)
    await revocations.start()
    try:
        await eventually(lambda: revocations.is_current, within=5)
        yield revocations
    finally:
        await revocations.close()
        await redis.aclose()


async def test_unrevoked_tokens_are_answered_without_asking_redis(
    followed: FollowedRevocationList, redis_proxy: RedisCommandProxy
) -> None:
    before = len(redis_proxy.commands)
    for raw in (access_claims(), client_claims(), access_claims(scope="")):
        assert await followed.is_revoked(claims_of(raw)) is False
    assert reads(redis_proxy, before) == []


@pytest.mark.parametrize("kind", ["jti", "sid", "user", "client"])
async def test_a_revocation_on_the_feed_is_refused_within_a_second(
    followed: FollowedRevocationList,
    redis_client: aioredis.Redis,
    revocation_keys: RevocationKeys,
    redis_proxy: RedisCommandProxy,
    kind: str,
) -> None:
    raw = access_claims(iat=int(time.time()) - 5)
    claims = claims_of(raw)
    bystander = claims_of(access_claims(iat=raw["iat"]))
    subject = {"jti": raw["jti"], "sid": raw["sid"], "user": raw["sub"], "client": "other"}[kind]
    if kind == "client":
        claims = claims_of(access_claims(sub="other", client_id="other", iat=raw["iat"]))
    assert await followed.is_revoked(claims) is False

    await revoke(redis_client, revocation_keys, (kind, subject), value=raw["iat"])
    delay = await eventually(lambda: followed.is_revoked(claims), within=1.0)
    print(f"{kind} revocation refused after {delay * 1000:.0f} ms")

    # Only the entries the filter matched cost a round trip; the bystander's does not.
    before = len(redis_proxy.commands)
    assert await followed.is_revoked(bystander) is False
    assert reads(redis_proxy, before) == []


async def test_cutoffs_still_spare_tokens_issued_after_them(
    followed: FollowedRevocationList, redis_client: aioredis.Redis, revocation_keys: RevocationKeys
) -> None:
    raw = access_claims(iat=int(time.time()) - 5)
    await revoke(redis_client, revocation_keys, ("user", raw["sub"]), value=raw["iat"])
    await eventually(lambda: followed.is_revoked(claims_of(raw)), within=1.0)
    later = access_claims(sub=raw["sub"], iat=raw["iat"] + 1)
    assert await followed.is_revoked(claims_of(later)) is False


async def test_entries_written_before_the_follower_started_are_found(
    redis_client: aioredis.Redis,
    redis_proxy: RedisCommandProxy,
    redis_prefix: str,
    revocation_keys: RevocationKeys,
    marked: None,
) -> None:
    """The resync reads the whole list: nothing depends on having heard it announced."""
    revoked = [claims_of(access_claims()) for _ in range(3)]
    for claims in revoked:
        await redis_client.set(revocation_keys.jti(claims.jti), 1, ex=3600)
    redis = aioredis.Redis.from_url(redis_proxy.url)
    followed = FollowedRevocationList(redis, redis_prefix)
    await followed.start()
    try:
        await eventually(lambda: followed.is_current, within=5)
        for claims in revoked:
            assert await followed.is_revoked(claims) is True
        before = len(redis_proxy.commands)
        assert await followed.is_revoked(claims_of(access_claims())) is False
        assert reads(redis_proxy, before) == []
    finally:
        await followed.close()
        await redis.aclose()


async def test_a_lost_feed_is_not_trusted_until_a_full_resync(
    followed: FollowedRevocationList,
    redis_client: aioredis.Redis,
    revocation_keys: RevocationKeys,
    redis_proxy: RedisCommandProxy,
) -> None:
    """While the follower cannot reach Redis it trusts nothing (and so refuses every token);
    back, it trusts its filter only after reading the whole list again, which finds what
    was revoked while it was away, announced or not."""
    unheard, unannounced = claims_of(access_claims()), claims_of(access_claims())
    redis_proxy.refusing = True
    redis_proxy.drop_connections()
    await eventually(lambda: not followed.is_current, within=0.5)
    with pytest.raises(GuardUnavailableError):
        await followed.is_revoked(claims_of(access_claims()))
    await revoke(redis_client, revocation_keys, ("jti", unheard.jti))  # announced to nobody
    await redis_client.set(revocation_keys.jti(unannounced.jti), 1, ex=3600)

    redis_proxy.refusing = False
    await eventually(lambda: followed.is_current, within=5)
    assert await followed.is_revoked(unheard) is True
    assert await followed.is_revoked(unannounced) is True
    before = len(redis_proxy.commands)
    assert await followed.is_revoked(claims_of(access_claims())) is False
    assert reads(redis_proxy, before) == []


async def test_a_token_cleared_before_a_reconnect_is_checked_again_after_the_resync(
    followed: FollowedRevocationList,
    redis_client: aioredis.Redis,
    revocation_keys: RevocationKeys,
    redis_proxy: RedisCommandProxy,
) -> None:
    """A token's clearance is remembered only while the filter is unchanged: the resync
    after a reconnect adds to the filter in use, and what it adds counts for tokens
    already cleared, not only for new ones."""
    claims = claims_of(access_claims())
    assert await followed.is_revoked(claims) is False
    assert await followed.is_revoked(claims) is False  # now remembered as cleared

    redis_proxy.refusing = True
    redis_proxy.drop_connections()
    await eventually(lambda: not followed.is_current, within=0.5)
    await redis_client.set(revocation_keys.jti(claims.jti), 1, ex=3600)  # announced to nobody
    redis_proxy.refusing = False
    await eventually(lambda: followed.is_current, within=5)
    assert await followed.is_revoked(claims) is True


async def test_a_lost_marker_stops_the_trust_until_the_list_is_whole_again(
    followed: FollowedRevocationList,
    redis_client: aioredis.Redis,
    revocation_keys: RevocationKeys,
) -> None:
    """A flushed, restarted or failed-over Redis loses the marker: the follower stops
    answering from its filter (Redis then refuses every token) until the auth service has
    rebuilt the list and set the marker again, and then reads the rebuilt list."""
    # An entry only a full read finds (never announced), there before the marker goes: a
    # resync that begins once the marker is gone reads it whatever its timing.
    rebuilt = claims_of(access_claims())
    await redis_client.set(revocation_keys.jti(rebuilt.jti), 1, ex=3600)
    await redis_client.delete(revocation_keys.marker)
    await eventually(lambda: not followed.is_current, within=0.5)
    with pytest.raises(GuardUnavailableError):
        await followed.is_revoked(claims_of(access_claims()))
    await redis_client.set(revocation_keys.marker, str(int(time.time())))
    await eventually(lambda: followed.is_current, within=5)
    assert await followed.is_revoked(rebuilt) is True


async def test_a_changed_marker_means_a_rebuilt_list_and_a_resync(
    followed: FollowedRevocationList,
    redis_client: aioredis.Redis,
    revocation_keys: RevocationKeys,
) -> None:
    """The marker came back with another value between two looks (a rebuild): the filter
    is read again rather than trusted."""
    rebuilt = claims_of(access_claims())
    await redis_client.set(revocation_keys.jti(rebuilt.jti), 1, ex=3600)  # not announced
    await redis_client.set(revocation_keys.marker, "rebuilt")
    await eventually(lambda: followed.is_revoked(rebuilt), within=1.0)


async def test_several_entries_in_one_announcement(
    followed: FollowedRevocationList,
    redis_client: aioredis.Redis,
    revocation_keys: RevocationKeys,
) -> None:
    tokens = [claims_of(access_claims()) for _ in range(3)]
    await revoke(redis_client, revocation_keys, *(("jti", claims.jti) for claims in tokens))
    for claims in tokens:
        await eventually(partial(followed.is_revoked, claims), within=1.0)


async def test_the_periodic_rebuild_forgets_entries_that_are_gone(
    redis_proxy: RedisCommandProxy,
    redis_client: aioredis.Redis,
    redis_prefix: str,
    revocation_keys: RevocationKeys,
    marked: None,
) -> None:
    """Entries expire in Redis; a rebuild from scratch lets their tokens be cleared locally
    again, and loses nothing announced meanwhile."""
    redis = aioredis.Redis.from_url(redis_proxy.url)
    followed = FollowedRevocationList(redis, redis_prefix, rebuild_every=0.5)
    expired = claims_of(access_claims())
    await revoke(redis_client, revocation_keys, ("jti", expired.jti))
    await followed.start()
    try:
        await eventually(lambda: followed.is_current, within=5)
        before = len(redis_proxy.commands)
        assert await followed.is_revoked(expired) is True
        assert len(reads(redis_proxy, before)) == 1  # the filter knew it: Redis confirmed
        await redis_client.delete(revocation_keys.jti(expired.jti))  # as its TTL would
        later = claims_of(access_claims())
        await revoke(redis_client, revocation_keys, ("jti", later.jti))

        async def cleared_locally() -> bool:
            before = len(redis_proxy.commands)
            revoked = await followed.is_revoked(expired)
            return not revoked and reads(redis_proxy, before) == []

        await eventually(cleared_locally, within=3)
        assert await followed.is_revoked(later) is True
    finally:
        await followed.close()
        await redis.aclose()


async def test_a_rebuilt_filter_forgets_the_tokens_the_old_one_cleared(
    redis_client: aioredis.Redis,
    redis_prefix: str,
    revocation_keys: RevocationKeys,
    marked: None,
) -> None:
    """The rebuilt filter holds as many items as the old one (one each), but not the
    same: a token the old one cleared is looked up again, not taken from memory."""
    followed = FollowedRevocationList(redis_client, redis_prefix, rebuild_every=0.5)
    await redis_client.set(revocation_keys.jti("gone"), 1, ex=3600)
    claims = claims_of(access_claims())
    await followed.start()
    try:
        await eventually(lambda: followed.is_current, within=5)
        assert await followed.is_revoked(claims) is False  # now remembered as cleared
        await redis_client.delete(revocation_keys.jti("gone"))
        await redis_client.set(revocation_keys.jti(claims.jti), 1, ex=3600)  # not announced
        # Asked while the filter is trusted: a lapse would send the check to Redis anyway.
        await eventually(lambda: followed.is_current and followed.is_revoked(claims), within=3)
    finally:
        await followed.close()


async def test_close_ends_the_follower(
    redis_client: aioredis.Redis, redis_prefix: str, marked: None
) -> None:
    followed = FollowedRevocationList(redis_client, redis_prefix)
    await followed.start()
    await eventually(lambda: followed.is_current, within=5)
    await followed.close()
    assert not followed.is_current
    following = [task for task in asyncio.all_tasks() if "FollowedRevocationList" in repr(task)]
    assert following == []


async def test_a_silent_feed_falls_back_to_redis(
    followed: FollowedRevocationList, redis_client: aioredis.Redis
) -> None:
    """Pongs prove the feed is live; a feed that stops answering is not trusted past
    its lag bound (under a second), even while its connection stays open."""
    await redis_client.client_pause(1500, all=True)
    started = time.monotonic()
    try:
        await eventually(lambda: not followed.is_current, within=1.0)
        assert time.monotonic() - started < 1.0
    finally:
        await redis_client.client_unpause()
    await eventually(lambda: followed.is_current, within=5)


async def test_without_the_marker_the_follower_never_trusts_its_filter(
    redis_proxy: RedisCommandProxy,
    redis_client: aioredis.Redis,
    redis_prefix: str,
    revocation_keys: RevocationKeys,
) -> None:
    """A list being rebuilt (no marker) cannot seed the filter: every check goes to Redis,
    which fails closed, until the marker is back."""
    redis = aioredis.Redis.from_url(redis_proxy.url, socket_timeout=1, socket_connect_timeout=1)
    followed = FollowedRevocationList(redis, redis_prefix, resync_delay=0.1)
    marker = revocation_keys.marker.encode()

    def marker_reads() -> int:
        return sum(
            command[0].upper() == b"GET" and command[1:] == [marker]
            for command in redis_proxy.commands
        )

    await followed.start()
    try:
        # It scanned the list, found no marker, and looked again: three times over.
        await eventually(lambda: marker_reads() >= 3, within=5)
        assert not followed.is_current
        with pytest.raises(GuardUnavailableError):
            await followed.is_revoked(claims_of(access_claims()))
        await redis_client.set(revocation_keys.marker, str(int(time.time())))
        await eventually(lambda: followed.is_current, within=5)
        assert await followed.is_revoked(claims_of(access_claims())) is False
    finally:
        await followed.close()
        await redis.aclose()


async def test_a_flushed_redis_loses_nothing_the_filter_heard(
    followed: FollowedRevocationList,
    redis_client: aioredis.Redis,
    revocation_keys: RevocationKeys,
    redis_prefix: str,
) -> None:
    """After a flush the entries are gone from Redis until the auth service rebuilds
    them; a token the filter knows is revoked goes to Redis, finds no marker, and is
    refused (503) rather than accepted."""
    claims = claims_of(access_claims())
    await revoke(redis_client, revocation_keys, ("jti", claims.jti))
    await eventually(lambda: followed.is_revoked(claims), within=1.0)
    keys = [key async for key in redis_client.scan_iter(match=f"{redis_prefix}*")]
    await redis_client.delete(*keys)
    with pytest.raises(GuardUnavailableError):
        await followed.is_revoked(claims)


def test_the_filter_is_bounded_and_rarely_wrong() -> None:
    capacity = 50_000
    bloom = BloomFilter(capacity, error_rate=0.001)
    members = [secrets.token_hex(16) for _ in range(capacity)]
    for member in members:
        bloom.add(member)
    assert all(member in bloom for member in members)  # never a false negative
    strangers = [secrets.token_hex(16) for _ in range(50_000)]
    false_positives = sum(stranger in bloom for stranger in strangers)
    assert false_positives / len(strangers) < 0.005, false_positives
    # About 1.8 bytes an entry at 0.1 %: two million entries fit in ~3.4 MiB.
    assert bloom.nbytes < capacity * 2
    size = bloom.nbytes
    for member in (secrets.token_hex(16) for _ in range(capacity)):
        bloom.add(member)  # past capacity: more false positives, never more memory
    assert bloom.nbytes == size


def test_the_feed_is_on_by_default_and_can_be_switched_off() -> None:
    environ = {
        "PORTCULLIS_ISSUER": ISSUER,
        "PORTCULLIS_AUDIENCE": AUDIENCE,
        "PORTCULLIS_JWKS_URL": "http://127.0.0.1:1/jwks.json",
        "PORTCULLIS_REDIS_URL": "redis://127.0.0.1:1/0",
    }
    assert GuardConfig.from_env(environ).revocation_feed is True
    off = GuardConfig.from_env({**environ, "PORTCULLIS_REVOCATION_FEED": "off"})
    assert off.revocation_feed is False
    assert isinstance(PortcullisGuard(off, keys=_no_keys()).revocations, RedisRevocationList)
    assert isinstance(
        PortcullisGuard(
            guard_config(redis_url="redis://127.0.0.1:1/0"), keys=_no_keys()
        ).revocations,
        FollowedRevocationList,
    )
    with pytest.raises(SettingsError, match="PORTCULLIS_REVOCATION_FEED"):
        GuardConfig.from_env({**environ, "PORTCULLIS_REVOCATION_FEED": "maybe"})


def _no_keys() -> StaticKeySource:
    return StaticKeySource({"keys": []})


async def test_http_guard_with_the_feed_refuses_a_revoked_token(
    jwks_server: JWKSServer,
    rsa_key: SigningKey,
    redis_proxy: RedisCommandProxy,
    redis_client: aioredis.Redis,
    redis_prefix: str,
    revocation_keys: RevocationKeys,
    marked: None,
) -> None:
    guard = PortcullisGuard(
        guard_config(jwks_url=jwks_server.url, redis_url=redis_proxy.url, redis_prefix=redis_prefix)
    )
    assert isinstance(guard.revocations, FollowedRevocationList)
    revocations = guard.revocations
    claims = access_claims()
    token = mint(rsa_key, claims)
    async with AsyncTestClient(app=guarded_app(guard)) as http:
        await eventually(lambda: revocations.is_current, within=5)
        before = len(redis_proxy.commands)
        assert (await http.get("/api/me", headers=bearer(token))).status_code == 200
        assert reads(redis_proxy, before) == []
        await revoke(redis_client, revocation_keys, ("sid", claims["sid"]))

        async def refused() -> bool:
            response = await http.get("/api/me", headers=bearer(token))
            return response.status_code == 401

        await eventually(refused, within=1.0)
        assert_invalid_token(await http.get("/api/me", headers=bearer(token)))
