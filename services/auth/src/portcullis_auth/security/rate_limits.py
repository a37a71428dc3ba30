"""Request budgets of the limited endpoints: per client address and per client.

Each endpoint (token, introspection, revocation, personal access tokens,
authorization, device) has a budget per address, spent by every request before
anything else is done, and a budget per client, spent once the client is known:
authenticated where the endpoint authenticates clients, so that nobody can spend a
confidential client's budget but the client itself. A client may have a budget of
its own (`portcullis client update CLIENT --rate-limit 100/second`).

Budgets are fixed windows counted by the `limits` library: in Redis under the
service's key prefix, so that every replica spends from the same budget, and in
memory for the embedded stack (one process). Addresses are counted by their hash, an
IPv6 address by its /64, as the login throttle counts them.

A budget that cannot be counted (Redis unreachable) lets the request through, and is
counted as `rate_limit_unavailable`: the limits protect capacity, and refusing every
request while Redis is away would turn a Redis outage into an outage of the endpoints
that do not need Redis.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from functools import lru_cache

from limits import RateLimitItem
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import FixedWindowRateLimiter
from redis.asyncio import Redis
from redis.exceptions import RedisError

from portcullis_auth import events
from portcullis_auth.records import Client, RateLimited
from portcullis_auth.security.login_throttle import throttled_address
from portcullis_auth.settings import RateLimitSettings, parse_rate

TOKEN = "token"  # noqa: S105 - an endpoint's name
INTROSPECTION = "introspect"
REVOCATION = "revoke"
PERSONAL_ACCESS = "personal-access-tokens"
AUTHORIZATION = "authorize"
DEVICE = "device"
"""The limited endpoints, each with budgets of its own."""


class RateLimiter:
    def __init__(self, settings: RateLimitSettings, redis: Redis | None, prefix: str) -> None:
        """`redis`: where budgets are counted (its pool, so its TLS and ACL settings
        hold); None: in this process's memory."""
        self._enabled = settings.enabled
        self._per_address = parse_rate(settings.per_ip)
        self._per_client = parse_rate(settings.per_client)
        storage: Storage = (
            MemoryStorage()
            if redis is None
            else RedisStorage(
                "async+redis://",
                implementation="redispy",
                key_prefix=f"{prefix}rate-limits",
                connection_pool=redis.connection_pool,  # type: ignore[arg-type] # typed too narrowly
            )
        )
        self._windows = FixedWindowRateLimiter(storage)

    async def spend_address(self, endpoint: str, client_ip: str) -> RateLimited | None:
        """Count one request to `endpoint` from `client_ip`: None while within the
        address's budget, else the refusal."""
        address = hashlib.sha256(throttled_address(client_ip).encode()).hexdigest()[:32]
        return await self._spend(endpoint, self._per_address, "address", address)

    async def spend_client(self, endpoint: str, client: Client) -> RateLimited | None:
        """Count one request to `endpoint` by `client`, on its own budget if it has one."""
        budget = self._per_client if client.rate_limit is None else _rate(client.rate_limit)
        return await self._spend(endpoint, budget, "client", client.id)

    def for_clients(self, endpoint: str) -> EndpointClientLimit:
        """The budget per client of `endpoint`, as the protocol core spends it."""
        return EndpointClientLimit(self, endpoint)

    async def _spend(
        self, endpoint: str, budget: RateLimitItem, kind: str, identity: str
    ) -> RateLimited | None:
        if not self._enabled:
            return None
        try:
            if await self._windows.hit(budget, endpoint, kind, identity):
                return None
            window = await self._windows.get_window_stats(budget, endpoint, kind, identity)
        except RedisError as exc:
            events.emit("rate_limit_unavailable", logging.DEBUG, error=type(exc).__name__)
            return None
        events.emit("rate_limited", logging.DEBUG, endpoint=endpoint, by=kind)
        return RateLimited(
            limit=budget.amount,
            window=budget.get_expiry(),
            retry_after=max(1, math.ceil(window.reset_time - time.time())),
        )


class EndpointClientLimit:
    """One endpoint's budget per client (the core's `ClientRateLimit` port)."""

    __slots__ = ("_endpoint", "_limiter")

    def __init__(self, limiter: RateLimiter, endpoint: str) -> None:
        self._limiter = limiter
        self._endpoint = endpoint

    async def spend(self, client: Client) -> RateLimited | None:
        return await self._limiter.spend_client(self._endpoint, client)


@lru_cache(maxsize=1024)
def _rate(text: str) -> RateLimitItem:
    """A client's own budget, parsed once (it was checked when it was set)."""
    return parse_rate(text)
