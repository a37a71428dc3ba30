"""Backing off repeated password attempts per (normalised username, client IP) and per IP.

Counted whether or not the user exists, so the answer says nothing about
accounts. Every attempt is counted *before* the password is checked, in one
atomic step, so parallel guesses cannot all slip past the check. After
`max_failures` for one (username, IP), each further attempt must wait a delay
that doubles with every failure (capped): a back-off, never an account lock,
and keyed by the client IP so one attacker cannot lock out the real user.

Guesses spread over many usernames meet the same back-off per IP, after
`max_failures_per_ip` within a window that starts at the IP's first failure
(it is not renewed, so a busy office's typos run out). A success forgets the
(username, IP) count and takes its own attempt off the IP's count; an attempt
whose password was never checked counts for nothing. IPv6 addresses count by
their /64.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
import time
from collections.abc import Callable

from redis.asyncio import Redis

from portcullis_auth.security.usernames import normalise_username
from portcullis_auth.settings import LoginSettings

BACKOFF_BASE_SECONDS = 15

# KEYS[1]: the (username, IP) counter, KEYS[2]: the IP's. ARGV: now, base, cap, the
# (username, IP) counter's lifetime (renewed by every attempt), the IP's window (from its
# first failure, never renewed: a busy office's count runs out), the limit of KEYS[1],
# the limit of KEYS[2]. Answers the seconds to wait (refused, nothing counted) or 0
# (counted in both, go ahead).
_BEGIN_ATTEMPT = """
local now = tonumber(ARGV[1])
local wait = 0
for i, key in ipairs(KEYS) do
  local failures = tonumber(redis.call('HGET', key, 'failures') or '0')
  local limit = tonumber(ARGV[5 + i])
  if failures >= limit then
    local last = tonumber(redis.call('HGET', key, 'last') or '0')
    local backoff = math.min(tonumber(ARGV[3]), tonumber(ARGV[2]) * 2 ^ (failures - limit))
    wait = math.max(wait, last + backoff - now)
  end
end
if wait > 0 then return math.ceil(wait) end
for i, key in ipairs(KEYS) do
  redis.call('HINCRBY', key, 'failures', 1)
  redis.call('HSET', key, 'last', ARGV[1])
  if i == 1 or redis.call('TTL', key) < 0 then
    redis.call('EXPIRE', key, tonumber(ARGV[3 + i]))
  end
end
return 0
"""

# KEYS: counters to take this attempt off (floor 0); ARGV[1]: "forget" to delete KEYS[1].
_UNCOUNT = """
for i, key in ipairs(KEYS) do
  if i == 1 and ARGV[1] == 'forget' then
    redis.call('DEL', key)
  elseif tonumber(redis.call('HGET', key, 'failures') or '0') > 0 then
    redis.call('HINCRBY', key, 'failures', -1)
  end
end
return 1
"""


def wait_seconds(
    failures: int, last_attempt: float, limit: int, settings: LoginSettings, now: float
) -> int:
    if failures < limit:
        return 0
    backoff: float = min(settings.max_backoff, BACKOFF_BASE_SECONDS * 2.0 ** (failures - limit))
    return max(0, math.ceil(last_attempt + backoff - now))


def throttled_address(client_ip: str) -> str:
    """The address a client is counted by: one spelling of each address, an IPv4 address
    mapped into IPv6 as itself, and an IPv6 address by its /64 (one subscriber's)."""
    try:
        address = ipaddress.ip_address(client_ip)
    except ValueError:
        return client_ip
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


def address_key(client_ip: str) -> str:
    """How an address is named in Redis keys: hashed (a key name must not carry an
    address into Redis dumps or logs), after `throttled_address`."""
    return hashlib.sha256(throttled_address(client_ip).encode()).hexdigest()


def throttle_keys(username: str, client_ip: str) -> tuple[str, str]:
    """The (username, IP) counter's key and the IP's, hashed as `address_key` is."""
    username, address = normalise_username(username), throttled_address(client_ip)
    return (
        hashlib.sha256(f"{username}\x00{address}".encode()).hexdigest(),
        "ip:" + address_key(client_ip),
    )


class RedisLoginThrottle:
    def __init__(
        self,
        redis: Redis,
        settings: LoginSettings,
        prefix: str,
        *,
        counter: str = "login-failures",
        clock: Callable[[], float] = time.time,
    ) -> None:
        """`counter`: what is counted, in the keys' names, so that two throttles (password
        logins, device user codes) keep counts apart. `clock`: the wall-clock time attempts are stamped with and back-offs measured by
        (the script reads no clock of Redis's); a parameter so that tests can move it on
        instead of waiting."""
        self._settings = settings
        self._clock = clock
        self._prefix = f"{prefix}{counter}:"
        self._begin = redis.register_script(_BEGIN_ATTEMPT)
        self._uncount = redis.register_script(_UNCOUNT)

    def _keys(self, username: str, client_ip: str) -> list[str]:
        return [self._prefix + key for key in throttle_keys(username, client_ip)]

    async def begin_attempt(self, username: str, client_ip: str) -> int:
        settings = self._settings
        window = settings.failure_window + settings.max_backoff
        wait = await self._begin(
            keys=self._keys(username, client_ip),
            args=[
                self._clock(),
                BACKOFF_BASE_SECONDS,
                settings.max_backoff,
                window,
                window,
                settings.max_failures,
                settings.max_failures_per_ip,
            ],
        )
        return int(wait)

    async def succeeded(self, username: str, client_ip: str) -> None:
        await self._uncount(keys=self._keys(username, client_ip), args=["forget"])

    async def withdraw(self, username: str, client_ip: str) -> None:
        await self._uncount(keys=self._keys(username, client_ip), args=["keep"])


class MemoryLoginThrottle:
    """The embedded default's throttle: one process, no Redis (one event loop: atomic)."""

    def __init__(self, settings: LoginSettings) -> None:
        self._settings = settings
        self._entries: dict[str, tuple[int, float, float]] = {}
        """Key -> failures, last attempt, when the count runs out."""

    async def begin_attempt(self, username: str, client_ip: str) -> int:
        settings = self._settings
        now = time.time()
        window = settings.failure_window + settings.max_backoff
        counted = []
        wait = 0
        keys = throttle_keys(username, client_ip)
        for key, limit in zip(
            keys, (settings.max_failures, settings.max_failures_per_ip), strict=True
        ):
            failures, last, ends = self._entries.get(key, (0, 0.0, 0.0))
            if now >= ends:
                failures, ends = 0, now + window
            wait = max(wait, wait_seconds(failures, last, limit, settings, now))
            renewed = now + window if key == keys[0] else ends  # the IP's window is fixed
            counted.append((key, (failures + 1, now, renewed)))
        if wait:
            return wait
        if len(self._entries) > 100_000:
            self._entries.clear()  # bounded memory beats perfect counting
        self._entries.update(counted)
        return 0

    async def succeeded(self, username: str, client_ip: str) -> None:
        pair, ip = throttle_keys(username, client_ip)
        self._entries.pop(pair, None)
        self._uncount(ip)

    async def withdraw(self, username: str, client_ip: str) -> None:
        for key in throttle_keys(username, client_ip):
            self._uncount(key)

    def _uncount(self, key: str) -> None:
        failures, last, ends = self._entries.get(key, (0, 0.0, 0.0))
        if failures > 0:
            self._entries[key] = (failures - 1, last, ends)
