"""Request budgets of the limited endpoints: per client address and per client.

Each endpoint (token, introspection, revocation, personal access tokens,
authorization, device) has a budget per address, spent by every request before
anything else is done, and a budget per client, spent once the client is known.

Only the holder of a secret can spend a budget that is the client's alone, so a
client's budget is its own only where the client keeps a secret and nobody else
speaks through it: a third-party confidential client. A public client (anyone can
send its id) and a first-party client (the login proxy and the playground send its
secret for every visitor) spend a budget per (client, address), so that one visitor
cannot lock every other out. A client may have a budget of its own
(`portcullis client update CLIENT --rate-limit 100/second`).

Budgets are fixed windows, aligned to the clock, counted by every replica together
in Redis. A request never waits for Redis: it is counted in the process, against
the replicas' total as last read, and every `SYNC_INTERVAL` the process adds what it
counted to Redis's totals (one pipeline for every key) and reads them back. So the
token endpoint pays a dictionary lookup per budget rather than a round trip (two
round trips were four tenths of a client-credentials token's cost), and all
replicas together may overshoot a budget by what they admit in one interval.

Without Redis (the embedded stack) or while Redis cannot be reached, each process
counts on its own: budgets still hold per process. A Redis that answers with an
error rather than not at all (an ACL that forbids the commands, out of memory) is a
misconfiguration, and is logged. Addresses are counted by the login throttle's hash
of them (IPv6 by its /64).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from portcullis_auth import events
from portcullis_auth.records import Client, RateLimited
from portcullis_auth.security.login_throttle import address_key
from portcullis_auth.settings import Rate, RateLimitSettings, parse_rate

logger = logging.getLogger("portcullis.auth")

SYNC_INTERVAL = 0.1
"""Seconds between two exchanges of counts with Redis."""
REDIS_PATIENCE = 1.0
"""Seconds an exchange waits for Redis before the process counts on its own."""
MISCONFIGURED_LOG_EVERY = 60.0
"""Seconds between two warnings that Redis refuses to count."""
MAX_KEYS = 100_000
"""Budgets one process keeps counts of at once: past it, the oldest are forgotten
(bounded memory beats perfect counting under a flood of addresses)."""


class Endpoint(StrEnum):
    """The limited endpoints, each with budgets of its own."""

    TOKEN = "token"  # noqa: S105 - an endpoint's name
    INTROSPECTION = "introspect"
    REVOCATION = "revoke"
    PERSONAL_ACCESS = "personal-access-tokens"
    AUTHORIZATION = "authorize"
    DEVICE = "device"


@dataclass(slots=True)
class _Count:
    total: int
    """Every replica's requests in the window, as Redis last said, and this process's since."""
    unsent: int
    """This process's requests not yet added to Redis's total."""
    expires: float
    """When the window ends (wall clock)."""


class RateLimiter:
    """Spends the budgets of one service; every replica's limiter on the same Redis
    spends from the same budgets."""

    def __init__(
        self,
        settings: RateLimitSettings,
        redis: Redis | None,
        prefix: str,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """`redis`: where replicas add up their counts (None: this process counts
        alone). `clock`: the wall-clock time windows are aligned to; a parameter so that
        tests can move it on instead of waiting."""
        self._enabled = settings.enabled
        self._per_address = parse_rate(settings.per_ip)
        self._per_client = parse_rate(settings.per_client)
        self._redis = redis
        self._prefix = f"{prefix}rate-limits:"
        self._clock = clock
        self._counts: dict[str, _Count] = {}
        self._sync: asyncio.Task[None] | None = None
        self._warned_at = -MISCONFIGURED_LOG_EVERY

    def spend_address(self, endpoint: Endpoint, client_ip: str) -> RateLimited | None:
        """Count one request to `endpoint` from `client_ip`: None while within the
        address's budget, else the refusal."""
        return self._spend(endpoint, self._per_address, "address", address_key(client_ip))

    def spend_client(
        self, endpoint: Endpoint, client: Client, client_ip: str
    ) -> RateLimited | None:
        """Count one request to `endpoint` by `client` from `client_ip`, on the client's
        own budget if it has one."""
        identity = (
            client.id if _keeps_its_budget(client) else f"{client.id}/{address_key(client_ip)}"
        )
        return self._spend(endpoint, _budget_of(client, self._per_client), "client", identity)

    def spend_user(self, endpoint: Endpoint, client: Client, subject: str) -> RateLimited | None:
        """Count one request to `endpoint` made with a token of `client` for `subject`:
        one user's requests through a shared client spend that user's budget only."""
        budget = _budget_of(client, self._per_client)
        return self._spend(endpoint, budget, "user", f"{client.id}/{subject}")

    def for_clients(self, endpoint: Endpoint) -> EndpointClientLimit:
        """The budget per client of `endpoint`, as the protocol core spends it."""
        return EndpointClientLimit(self, endpoint)

    def _spend(
        self, endpoint: Endpoint, budget: Rate, kind: str, identity: str
    ) -> RateLimited | None:
        if not self._enabled:
            return None
        now = self._clock()
        window_start = now - now % budget.window
        key = f"{self._prefix}{endpoint}:{kind}:{identity}:{budget.window}:{int(window_start)}"
        count = self._counts.get(key)
        if count is None:
            if len(self._counts) >= MAX_KEYS:
                self._forget_ended(now, all_if_none=True)
            count = self._counts[key] = _Count(0, 0, window_start + budget.window)
        if count.total >= budget.limit:
            events.emit("rate_limited", logging.DEBUG, endpoint=endpoint.value, by=kind)
            return RateLimited(
                limit=budget.limit,
                window=budget.window,
                retry_after=max(1, math.ceil(count.expires - now)),
            )
        count.total += 1
        count.unsent += 1
        self._start_syncing()
        return None

    def _start_syncing(self) -> None:
        if self._redis is not None and (self._sync is None or self._sync.done()):
            self._sync = asyncio.get_running_loop().create_task(self._sync_forever())

    async def _sync_forever(self) -> None:
        """Add this process's counts to Redis's totals and read them back, until there
        is nothing left to send."""
        while True:
            await asyncio.sleep(SYNC_INTERVAL)
            self._forget_ended(self._clock())
            if not await self.sync():
                return

    async def sync(self) -> bool:
        """One exchange with Redis: whether anything was sent."""
        assert self._redis is not None
        sending = [
            (key, count, count.unsent) for key, count in self._counts.items() if count.unsent
        ]
        if not sending:
            return False
        for _, count, unsent in sending:
            count.unsent -= unsent  # counted again below if the exchange fails
        pipeline = self._redis.pipeline(transaction=False)
        for key, count, unsent in sending:
            pipeline.incrby(key, unsent)
            pipeline.expireat(key, math.ceil(count.expires) + 1)
        try:
            async with asyncio.timeout(REDIS_PATIENCE):
                answers = await pipeline.execute()
        except (TimeoutError, RedisConnectionError, RedisTimeoutError, OSError) as exc:
            # Redis away: counted here alone until it is back (sent again then).
            events.emit("rate_limit_unavailable", logging.DEBUG, error=type(exc).__name__)
            self._unsend(sending)
            return True
        except RedisError as exc:
            self._misconfigured(exc)
            self._unsend(sending)
            return True
        for (_, count, _), total in zip(sending, answers[::2], strict=True):
            # Redis's total holds what was just sent; add what came in meanwhile.
            count.total = max(count.total, int(total) + count.unsent)
        return True

    def _unsend(self, sending: list[tuple[str, _Count, int]]) -> None:
        for _, count, unsent in sending:
            count.unsent += unsent

    def _forget_ended(self, now: float, *, all_if_none: bool = False) -> None:
        ended = [key for key, count in self._counts.items() if count.expires <= now]
        for key in ended:
            del self._counts[key]
        if all_if_none and not ended:
            self._counts.clear()

    def _misconfigured(self, exc: RedisError) -> None:
        events.emit("rate_limit_unavailable", logging.DEBUG, error=type(exc).__name__)
        now = time.monotonic()
        if now - self._warned_at >= MISCONFIGURED_LOG_EVERY:
            self._warned_at = now
            logger.warning(
                "rate limits are counted per process only: Redis refused (%s: %s)",
                type(exc).__name__,
                exc,
            )

    async def close(self) -> None:
        """Send what is still unsent, then stop."""
        if self._sync is not None:
            self._sync.cancel()
            self._sync = None
        if self._redis is not None:
            await self.sync()


class EndpointClientLimit:
    """One endpoint's budget per client (the core's `ClientRateLimit` port)."""

    __slots__ = ("_endpoint", "_limiter")

    def __init__(self, limiter: RateLimiter, endpoint: Endpoint) -> None:
        self._limiter = limiter
        self._endpoint = endpoint

    def spend(self, client: Client, client_ip: str | None) -> RateLimited | None:
        return self._limiter.spend_client(self._endpoint, client, client_ip or "unknown")


def _keeps_its_budget(client: Client) -> bool:
    """Only a third-party confidential client's requests are all its own."""
    return not client.is_public and not client.first_party


def _budget_of(client: Client, default: Rate) -> Rate:
    if client.rate_limit is None:
        return default
    try:
        return parse_rate(client.rate_limit)
    except ValueError:  # checked when it was set; a row changed by hand falls back
        return default
