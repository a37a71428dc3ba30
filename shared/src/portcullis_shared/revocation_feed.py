"""The revocation list, followed: a local Bloom filter that answers most checks
without a round trip to Redis.

Every writer of the list announces each entry on a pub/sub channel
(`RevocationKeys.feed`) in the same round trip that writes it. The follower
subscribes, then scans every entry in Redis into a Bloom filter while adding
each announcement it hears; once the scan is done and the list's marker is
there, the filter holds every entry (and perhaps a few strangers). From then
on a token none of whose entries (`jti`, `sid`, user, client) is in the
filter is answered "not revoked" locally; any match, however likely a false
positive, is asked of Redis as before, so cutoffs and the marker keep their
meaning.

Why a revocation is still refused within a second: the follower pings Redis
on the subscription every `ping_interval`; a pong proves every announcement
published before Redis answered the ping has been heard. The filter is
trusted only while the newest confirmed ping was sent less than `max_lag`
ago, so a token accepted locally was checked less than `max_lag` after any
revocation the filter missed. A lost connection, a silent one, or a
reconnect stops the trust at once or within `max_lag`; the trust returns
only after a full resync. Until then every check goes to Redis.

Memory is fixed by `capacity` (about 1.8 bytes an entry at 0.1 % false
positives); past it the filter grows less exact, never larger. The filter is
rebuilt from Redis every `rebuild_every` seconds so that expired entries
leave it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from portcullis_shared.bloom import BloomFilter
from portcullis_shared.claims import AccessTokenClaims
from portcullis_shared.revocation import DEFAULT_PREFIX, RedisRevocationList

logger = logging.getLogger("portcullis.revocation_feed")

SCAN_COUNT = 10_000


class FollowedRevocationList:
    def __init__(
        self,
        redis: Redis,
        prefix: str = DEFAULT_PREFIX,
        *,
        capacity: int = 2_000_000,
        error_rate: float = 0.001,
        max_lag: float = 0.8,
        ping_interval: float = 0.2,
        resync_delay: float = 1.0,
        rebuild_every: float = 3600.0,
    ) -> None:
        self._redis = redis
        self._fallback = RedisRevocationList(redis, prefix)
        self.keys = self._fallback.keys
        self._capacity = capacity
        self._error_rate = error_rate
        self._max_lag = max_lag
        self._ping_interval = ping_interval
        self._resync_delay = resync_delay
        self._rebuild_every = rebuild_every
        self._filter = BloomFilter(capacity, error_rate)
        self._building: BloomFilter | None = None
        """A fresh filter being filled by a scan; it hears announcements as well."""
        self._synced = False
        self._confirmed_at = -math.inf
        """When the newest ping that has been answered was sent (monotonic)."""
        self._follower: asyncio.Task[None] | None = None
        self._stopping = False

    @property
    def is_current(self) -> bool:
        """True while the filter holds every entry, as proven by a recent pong."""
        return self._synced and time.monotonic() - self._confirmed_at < self._max_lag

    async def is_revoked(self, claims: AccessTokenClaims) -> bool:
        if self.is_current and not self._may_cover(claims):
            return False
        return await self._fallback.is_revoked(claims)

    def _may_cover(self, claims: AccessTokenClaims) -> bool:
        known = self._filter
        return (
            f"jti:{claims.jti}" in known
            or f"sid:{claims.sid}" in known
            or (not claims.is_client_token and f"user:{claims.sub}" in known)
            or f"client:{claims.client_id}" in known
        )

    async def start(self) -> None:
        """Begin following; checks go to Redis until the first resync completes."""
        if self._follower is None:
            self._stopping = False
            self._follower = asyncio.create_task(self._follow_forever())

    async def close(self) -> None:
        self._synced = False
        self._stopping = True
        follower, self._follower = self._follower, None
        # A cancellation that meets a read timeout inside the Redis client can be lost
        # (Python 3.11's asyncio.timeout); the loops also stop on the flag, and we ask again.
        while follower is not None and not follower.done():
            follower.cancel()
            await asyncio.wait({follower}, timeout=self._ping_interval * 2)

    # --- following -------------------------------------------------------------------------

    async def _follow_forever(self) -> None:
        while not self._stopping:
            try:
                await self._follow()
            except (RedisError, OSError) as exc:
                logger.warning("revocation feed lost (%s); checking Redis", type(exc).__name__)
            self._synced = False
            self._building = None
            await asyncio.sleep(self._resync_delay)

    async def _follow(self) -> None:
        """One subscription, until it fails. Each (re)subscription starts a full resync:
        the client library may reconnect on its own, and what was published while it did
        is lost."""
        pubsub = self._redis.pubsub()
        scan: asyncio.Task[None] | None = None
        try:
            await pubsub.subscribe(self.keys.feed)
            next_ping = 0.0
            while not self._stopping:
                now = time.monotonic()
                if now >= next_ping:
                    await pubsub.ping(repr(now))
                    next_ping = now + self._ping_interval
                message = await pubsub.get_message(timeout=max(0.0, next_ping - now))
                kind = None if message is None else message["type"]
                if kind == "message":
                    self._hear(message["data"])
                elif kind == "pong":
                    self._confirm(message["data"])
                elif kind == "subscribe":
                    self._synced = False
                    if scan is not None:
                        scan.cancel()
                    scan = asyncio.create_task(self._resync(fresh=False))
                if scan is not None and scan.done():
                    scan.result()  # a failed scan ends this subscription
                    scan = asyncio.create_task(self._rebuild_later())
        finally:
            if scan is not None:
                scan.cancel()
                with contextlib.suppress(asyncio.CancelledError, RedisError, OSError):
                    await scan
            with contextlib.suppress(RedisError, OSError):
                await pubsub.aclose()  # type: ignore[no-untyped-call]  # redis-py leaves it untyped

    def _hear(self, data: bytes | str) -> None:
        text = data.decode() if isinstance(data, bytes) else data
        for item in text.splitlines():
            self._filter.add(item)
            if self._building is not None:
                self._building.add(item)

    def _confirm(self, data: bytes | str) -> None:
        text = data.decode() if isinstance(data, bytes) else data
        with contextlib.suppress(ValueError):
            self._confirmed_at = max(self._confirmed_at, float(text))

    async def _rebuild_later(self) -> None:
        """Wait, then rebuild from scratch so that expired entries leave the filter."""
        await asyncio.sleep(self._rebuild_every)
        await self._resync(fresh=True)

    async def _resync(self, *, fresh: bool) -> None:
        """Scan every entry into a filter; done only when the marker says the list is whole.

        After a reconnect the scan adds to the filter in use (what it heard before stays);
        a periodic rebuild fills a new one and swaps it in.
        """
        while True:
            target = BloomFilter(self._capacity, self._error_rate) if fresh else self._filter
            self._building = target if fresh else None
            started = time.monotonic()
            async for key in self._redis.scan_iter(match=self.keys.entries, count=SCAN_COUNT):
                target.add(_item(key, len(self.keys.prefix) + len("revoked:")))
            if await self._redis.exists(self.keys.marker):
                break
            # The list is being rebuilt: checks keep going to Redis (which refuses them).
            await asyncio.sleep(self._resync_delay)
        self._filter = target
        self._building = None
        self._synced = True
        logger.info(
            "revocation filter synced: %d entries in %.2f s, %d KiB",
            target.count,
            time.monotonic() - started,
            target.nbytes // 1024,
        )


def _item(key: Any, skip: int) -> str:
    text: str = key.decode() if isinstance(key, bytes) else key
    return text[skip:]
