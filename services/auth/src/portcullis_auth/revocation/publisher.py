"""Copying revocations to Redis, and keeping the copy whole.

The sequence number in Redis is the newest row id `sync` has pushed
everything up to (a request's own push writes its entries but leaves the
sequence alone, so a push that failed is never hidden by a later one that
landed). Once a second `sync` compares that sequence with Postgres: when
Redis is behind, the missing rows are pushed; when the marker is gone (a
restart, a flush, a failover to an empty replica) or Redis claims more than
Postgres has, the list is rebuilt from Postgres and only then is the marker
set again. Resource services refuse every token while the marker is missing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from portcullis_auth.db.models import Revocation, utcnow
from portcullis_auth.metrics import (
    REVOCATION_LIST_REBUILDS,
    REVOCATIONS_PUBLISHED,
    REVOCATIONS_WAITING,
    count_by_kind,
)
from portcullis_auth.repositories.revocations import RevocationRepository
from portcullis_shared.revocation import MemoryRevocationList, RevocationKeys

logger = logging.getLogger("portcullis.revocations")

BATCH = 5_000
RESCAN_WINDOW = 1_000
PUSH_DEADLINE = 1.0
SYNC_INTERVAL = 1.0

# Raise the sequence, never lower it: pushes may land out of order.
_ADVANCE = """
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if current < tonumber(ARGV[1]) then redis.call('SET', KEYS[1], ARGV[1]) end
return 1
"""


async def every_second(step: Callable[[], Awaitable[object]], what: str) -> None:
    """Run `step` once a second for ever; a failure is logged and tried again."""
    while True:
        try:
            await step()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - the loop must outlive any failure
            logger.warning("%s failed: %s", what, type(exc).__name__)
        await asyncio.sleep(SYNC_INTERVAL)


class RedisPolicyError(RuntimeError):
    """Redis could evict revocations; the message says how to fix it."""


async def check_eviction_policy(redis: Redis) -> None:
    """Refuse a Redis that may evict keys: an evicted revocation would un-revoke a token."""
    policy = (await redis.info("memory")).get("maxmemory_policy")
    if policy != "noeviction":
        raise RedisPolicyError(
            f"Redis maxmemory-policy is {policy!r}; Portcullis needs 'noeviction' "
            "(set `maxmemory-policy noeviction` in redis.conf or with CONFIG SET)"
        )


class RevocationNotLandedError(Exception):
    """Committed in Postgres, not yet in Redis: the sync loop will land it."""


class RevocationSink(Protocol):
    """Where committed revocations go for the resource services to see."""

    async def publish(self, rows: Sequence[Revocation]) -> None:
        """Land `rows`, or raise RevocationNotLandedError within about a second."""
        ...


class MemoryRevocationSink:
    """The embedded default: the auth and posts services share one in-process list."""

    def __init__(self, target: MemoryRevocationList) -> None:
        self.target = target

    async def publish(self, rows: Sequence[Revocation]) -> None:
        for row in rows:
            if row.kind == "jti":
                self.target.revoke_token(row.subject, row.expires_at.timestamp())
            elif row.kind == "sid":
                self.target.revoke_grant(row.subject, row.expires_at.timestamp())
            elif row.kind == "user" and row.cutoff is not None:
                self.target.revoke_user(row.subject, row.cutoff)
            elif row.kind == "client" and row.cutoff is not None:
                self.target.revoke_client(row.subject, row.cutoff)


class RevocationPublisher:
    def __init__(
        self, redis: Redis, sessionmaker: async_sessionmaker[AsyncSession], prefix: str
    ) -> None:
        self._redis = redis
        self._sessionmaker = sessionmaker
        self.keys = RevocationKeys(prefix)
        self._advance = redis.register_script(_ADVANCE)
        self._held = 0
        """The sequence Redis held when `sync` last read it; 0 before that, or while the list
        is not whole: every live revocation then counts as waiting."""

    async def push(self, rows: Sequence[Revocation]) -> None:
        """Write the entries. The sequence is left alone: only `sync` moves it, over rows it
        has pushed itself, so a row whose own push failed is never skipped because a later
        row landed (another replica's, or the CLI's)."""
        if not rows:
            return
        now = time.time()
        async with self._redis.pipeline(transaction=False) as pipe:
            for row in rows:
                ttl = max(1, int(row.expires_at.timestamp() - now) + 1)
                key = self.keys.entry(row.kind, row.subject)
                pipe.set(key, row.cutoff if row.cutoff is not None else 1, ex=ttl)
            # Announced in the same round trip: a follower trusts its filter only while
            # it provably hears every announcement (portcullis_shared.revocation_feed).
            pipe.publish(
                self.keys.feed,
                self.keys.announcement(self.keys.item(row.kind, row.subject) for row in rows),
            )
            await pipe.execute()

    async def publish(self, rows: Sequence[Revocation]) -> None:
        await self.push_within_deadline(rows)

    async def push_within_deadline(
        self, rows: Sequence[Revocation], deadline: float = PUSH_DEADLINE
    ) -> None:
        """Retry the push until it lands; raise RevocationNotLandedError after `deadline`."""
        if not rows:
            return
        stop = time.monotonic() + deadline
        while True:
            try:
                async with asyncio.timeout(max(0.05, stop - time.monotonic())):
                    await self.push(rows)
                count_by_kind(REVOCATIONS_PUBLISHED, (row.kind for row in rows))
                return
            except (RedisError, OSError, TimeoutError):
                if time.monotonic() >= stop:
                    raise RevocationNotLandedError from None
                await asyncio.sleep(0.05)

    async def sync(self) -> str:
        """Bring Redis level with Postgres; says what it did: ok, caught-up or rebuilt.

        Also measures the revocations waiting: none once a sync has levelled the list;
        while syncs fail, the live ones above the sequence Redis last held."""
        try:
            outcome = await self._level()
        except Exception:
            await self._measure_waiting()
            raise
        REVOCATIONS_WAITING.set(0)
        return outcome

    async def _level(self) -> str:
        marker, sequence = await self._redis.mget([self.keys.marker, self.keys.sequence])
        async with self._sessionmaker() as session:
            latest = await RevocationRepository(session).latest_id()
        pushed = int(sequence or 0)
        # Without its marker, or ahead of the database, the list is not whole: all wait.
        self._held = pushed if marker is not None and pushed <= latest else 0
        if marker is not None and pushed == latest:
            return "ok"
        if marker is not None and pushed < latest:
            # Ids can commit out of order: re-push a trailing window (pushes are idempotent).
            await self._push_from(max(0, pushed - RESCAN_WINDOW))
            return "caught-up"
        await self.rebuild()
        return "rebuilt"

    async def rebuild(self) -> None:
        """Refill the list from Postgres; the marker returns only when it is whole."""
        await self._redis.delete(self.keys.marker)
        await check_eviction_policy(self._redis)
        await self._redis.set(self.keys.sequence, 0)
        latest = await self._push_from(0)
        await self._advance(keys=[self.keys.sequence], args=[latest])
        await self._redis.set(self.keys.marker, str(int(time.time())))
        REVOCATION_LIST_REBUILDS.inc()
        logger.warning("revocation list rebuilt from the database up to %s", latest)

    async def _measure_waiting(self) -> None:
        with contextlib.suppress(Exception):  # the database may be what is down
            async with self._sessionmaker() as session:
                waiting = await RevocationRepository(session).count_live_after(self._held, utcnow())
            REVOCATIONS_WAITING.set(waiting)

    async def _push_from(self, after: int) -> int:
        """Push every live row above `after` up to the newest, then advance the sequence to it."""
        async with self._sessionmaker() as session:
            newest = await RevocationRepository(session).latest_id()
        latest = after
        while latest < newest:
            async with self._sessionmaker() as session:
                rows = await RevocationRepository(session).live_after(latest, utcnow(), BATCH)
            if not rows:
                break
            await self.push(rows)
            latest = rows[-1].id
        if newest > after:
            await self._advance(keys=[self.keys.sequence], args=[newest])
        return max(after, newest)

    async def run_forever(self) -> None:
        """The once-a-second check; every failure is logged and retried."""
        await every_second(self.sync, "revocation sync")


class LocalRevocationFollower:
    """Without Redis (the embedded default): follow the revocations table into the
    in-process list, so revocations made by any process (the CLI included) apply."""

    def __init__(
        self, sessionmaker: async_sessionmaker[AsyncSession], sink: MemoryRevocationSink
    ) -> None:
        self._sessionmaker = sessionmaker
        self._sink = sink
        self._seen = 0

    async def catch_up(self) -> None:
        while True:
            async with self._sessionmaker() as session:
                rows = await RevocationRepository(session).live_after(self._seen, utcnow(), BATCH)
            if not rows:
                return
            await self._sink.publish(rows)
            self._seen = rows[-1].id

    async def run_forever(self) -> None:
        await every_second(self.catch_up, "revocation follow")
