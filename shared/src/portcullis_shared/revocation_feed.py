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
meaning. A token cleared once is remembered as cleared until the filter changes
(any item added, or a rebuilt filter swapped in): a client sends its token many
times, and the repeat costs a set lookup instead of a filter lookup per entry.

Why a revocation is still refused within a second: every `ping_interval` the
follower reads the marker, then pings Redis on the subscription, the ping
carrying the time it was sent. A pong proves that every announcement
published before Redis answered has been heard, and that the marker was
there, unchanged, when the ping left. The filter is trusted only while the
newest confirmed ping is younger than `max_lag`, so a token accepted locally
was checked less than `max_lag` after any revocation the filter missed. A
lost connection, a silent one, a reconnect, or a marker gone or changed (Redis
flushed, restarted or failed over, and the list rebuilt) stops the trust at
once or within `max_lag`; it returns only after a full resync. Until then
every check goes to Redis, which refuses tokens while the marker is missing.

Memory is fixed by `capacity`: about 1.8 bytes an entry at 0.1 % false
positives, 3.4 MiB for the default two million, twice that while a rebuild
runs, plus up to CLEARED_MEMORY remembered tokens (their claims, mostly the ones
the verifier caches anyway: about 7 MiB if not). Past capacity the filter
grows less exact, never larger. It is rebuilt from Redis about every
`rebuild_every` seconds so that expired entries leave.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import time

from redis.asyncio import Redis
from redis.exceptions import RedisError

from portcullis_shared.bloom import BloomFilter
from portcullis_shared.claims import AccessTokenClaims
from portcullis_shared.revocation import DEFAULT_PREFIX, RedisRevocationList, token_entries

logger = logging.getLogger("portcullis.revocation_feed")

CLEARED_MEMORY = 10_000
"""Tokens remembered as cleared by the filter; when full, all are forgotten at once."""

SCAN_COUNT = 1_000
"""Keys per SCAN call; the event loop gets a turn after each batch (about 5 ms of adds)."""


class FollowedRevocationList:
    """A `RevocationList` that asks Redis only for tokens its filter cannot clear."""

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
        """`max_lag`: how stale the proof of a live feed may grow before checks go to Redis
        (keep it under a second: it bounds how long a missed revocation is accepted);
        `resync_delay`: the wait before re-subscribing, or re-reading a list being rebuilt."""
        if not 0 < ping_interval < max_lag:
            raise ValueError("ping_interval must be positive and shorter than max_lag")
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
        self._cleared: set[AccessTokenClaims] = set()
        """Tokens the filter cleared when it held `_cleared_at` items (at most
        CLEARED_MEMORY of them); forgotten when another filter is swapped in."""
        self._cleared_at = self._filter.additions
        self._building: BloomFilter | None = None
        """A fresh filter a periodic rebuild is filling; it hears announcements too."""
        self._synced = False
        self._marker: bytes | str | None = None
        """The marker's value when the filter was last synced."""
        self._confirmed_at = -math.inf
        """When the newest ping that has been answered was sent (monotonic)."""
        self._generation = 0
        """Bumped by every resync; a scan from an older generation never commits."""
        self._scan: asyncio.Task[None] | None = None
        self._follower: asyncio.Task[None] | None = None
        self._stopping = False

    @property
    def is_current(self) -> bool:
        """True while the filter holds every entry, as proven by a recent pong."""
        return self._synced and time.monotonic() - self._confirmed_at < self._max_lag

    async def is_revoked(self, claims: AccessTokenClaims) -> bool:
        """Locally False when the current filter clears every entry of the token; else Redis."""
        if self.is_current and self._cleared_locally(claims):
            return False
        return await self._fallback.is_revoked(claims)

    def _cleared_locally(self, claims: AccessTokenClaims) -> bool:
        """True when no entry of the token is in the filter. Tokens cleared are remembered
        (a client sends its token many times) while the filter stays as it was: any item
        added, or another filter swapped in, forgets them all."""
        known = self._filter
        if known.additions != self._cleared_at:
            self._forget_cleared()
        if claims in self._cleared:
            return True
        if any(self.keys.item(*entry) in known for entry in token_entries(claims)):
            return False
        if len(self._cleared) >= CLEARED_MEMORY:
            self._cleared.clear()
        self._cleared.add(claims)
        return True

    def _forget_cleared(self) -> None:
        """The filter changed: no token counts as cleared until looked up in it again."""
        self._cleared.clear()
        self._cleared_at = self._filter.additions

    async def start(self) -> None:
        """Begin following; checks go to Redis until the first resync completes."""
        if self._follower is None or self._follower.done():
            self._stopping = False
            self._follower = asyncio.create_task(self._follow_forever())

    async def close(self) -> None:
        """Stop following and release the subscription."""
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
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                logger.warning("revocation feed lost (%s); asking Redis", type(exc).__name__)
            except Exception:  # following must outlive any failure
                logger.exception("revocation feed failed; asking Redis")
            await asyncio.sleep(self._resync_delay)

    async def _follow(self) -> None:
        """One subscription, until it fails. Each (re)subscription starts a full resync:
        the client library may reconnect on its own, and what was published while it did
        is lost."""
        pubsub = self._redis.pubsub()
        try:
            await pubsub.subscribe(self.keys.feed)
            next_ping = 0.0
            while not self._stopping:
                now = time.monotonic()
                if now >= next_ping:
                    await self._check_marker()
                    await pubsub.ping(repr(now))
                    next_ping = now + self._ping_interval
                message = await pubsub.get_message(timeout=max(0.0, next_ping - time.monotonic()))
                kind = None if message is None else message["type"]
                if kind == "message":
                    self._hear(message["data"])
                elif kind == "pong":
                    self._confirm(message["data"])
                elif kind == "subscribe":
                    self._resync_now()
                self._after_scan()
        finally:
            self._synced = False
            self._building = None
            scan, self._scan = self._scan, None
            if scan is not None:
                scan.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await scan
            with contextlib.suppress(RedisError, OSError):
                await pubsub.aclose()  # type: ignore[no-untyped-call]  # redis-py leaves it untyped

    async def _check_marker(self) -> None:
        """A synced filter whose marker is gone or changed no longer matches the list."""
        if not self._synced:
            return  # a resync is under way; it waits for the marker itself
        marker = await self._redis.get(self.keys.marker)
        if marker != self._marker:
            logger.warning("revocation list marker %s; resyncing", "changed" if marker else "gone")
            self._resync_now()

    def _resync_now(self) -> None:
        self._synced = False
        self._generation += 1
        if self._scan is not None:
            self._scan.cancel()
        self._scan = asyncio.create_task(self._resync(self._generation, fresh=False))

    def _after_scan(self) -> None:
        """Once a scan ends, schedule the next rebuild (or raise what the scan raised)."""
        scan = self._scan
        if scan is None or not scan.done():
            return
        if scan.cancelled():
            self._resync_now()  # cancelled from outside: resync rather than trust
            return
        failure = scan.exception()
        if failure is not None:
            raise failure
        self._scan = asyncio.create_task(self._rebuild_later(self._generation))

    def _hear(self, data: bytes | str) -> None:
        for item in self.keys.items_announced(data):
            self._filter.add(item)
            if self._building is not None:
                self._building.add(item)

    def _confirm(self, data: bytes | str) -> None:
        with contextlib.suppress(ValueError):
            self._confirmed_at = max(self._confirmed_at, float(data))

    async def _rebuild_later(self, generation: int) -> None:
        """Wait, then rebuild from scratch so that expired entries leave the filter
        (spread out, so that a fleet of services does not scan at once)."""
        await asyncio.sleep(self._rebuild_every * random.uniform(0.9, 1.1))  # noqa: S311
        await self._resync(generation, fresh=True)

    async def _resync(self, generation: int, *, fresh: bool) -> None:
        """Scan every entry into a filter; done only when the marker says the list is whole.

        After a reconnect the scan adds to the filter in use (what it heard before stays);
        a periodic rebuild fills a new one and swaps it in.
        """
        started = time.monotonic()
        while True:
            target = BloomFilter(self._capacity, self._error_rate) if fresh else self._filter
            if fresh:
                self._building = target
            read = 0
            async for key in self._redis.scan_iter(match=self.keys.entries, count=SCAN_COUNT):
                target.add(self.keys.item_of_entry(key))
                read += 1
                if read % SCAN_COUNT == 0:
                    await asyncio.sleep(0)
            marker = await self._redis.get(self.keys.marker)
            if marker is not None:
                break
            # The list is being rebuilt: checks keep going to Redis (which refuses them).
            await asyncio.sleep(self._resync_delay)
        if generation != self._generation:
            return  # superseded by a newer resync
        self._filter = target
        self._forget_cleared()  # it may hold as many items as the old one, but not the same
        self._building = None
        self._marker = marker
        self._synced = True
        logger.info(
            "revocation filter synced: %d entries read in %.2f s (%d KiB)",
            read,
            time.monotonic() - started,
            target.nbytes // 1024,
        )
