"""Backing off repeated password attempts per (normalised username, client IP) and per IP.

Counted whether or not the user exists, so the answer says nothing about
accounts. Every attempt is counted *before* the password is checked, in one
atomic step, so parallel guesses cannot all slip past the check. After
`max_failures` for one (username, IP), each further attempt must wait a delay
that doubles with every failure (capped): a back-off, never an account lock,
and keyed by the client IP so one attacker cannot lock out the real user.

Guesses spread over many usernames meet the same back-off per IP, after
`max_failures_per_ip`. A success forgets the (username, IP) count and takes
its own attempt off the IP's count, so an office's good logins never add up.
"""

from __future__ import annotations

import hashlib
import math
import time
from typing import Protocol

from redis.asyncio import Redis

from portcullis_auth.settings import LoginSettings

BACKOFF_BASE_SECONDS = 15

# KEYS[1]: the (username, IP) counter, KEYS[2]: the IP's. ARGV: now, base, cap, ttl,
# the limit of KEYS[1], the limit of KEYS[2]. Answers the seconds to wait (refused,
# nothing counted) or 0 (counted in both, go ahead).
_BEGIN_ATTEMPT = """
local now = tonumber(ARGV[1])
local wait = 0
for i, key in ipairs(KEYS) do
  local failures = tonumber(redis.call('HGET', key, 'failures') or '0')
  local limit = tonumber(ARGV[4 + i])
  if failures >= limit then
    local last = tonumber(redis.call('HGET', key, 'last') or '0')
    local backoff = math.min(tonumber(ARGV[3]), tonumber(ARGV[2]) * 2 ^ (failures - limit))
    wait = math.max(wait, last + backoff - now)
  end
end
if wait > 0 then return math.ceil(wait) end
for _, key in ipairs(KEYS) do
  redis.call('HINCRBY', key, 'failures', 1)
  redis.call('HSET', key, 'last', ARGV[1])
  redis.call('EXPIRE', key, tonumber(ARGV[4]))
end
return 0
"""

# KEYS[1]: the (username, IP) counter, forgotten; KEYS[2]: the IP's, less this attempt.
_SUCCEEDED = """
redis.call('DEL', KEYS[1])
if tonumber(redis.call('HGET', KEYS[2], 'failures') or '0') > 0 then
  redis.call('HINCRBY', KEYS[2], 'failures', -1)
end
return 1
"""


class LoginThrottle(Protocol):
    async def begin_attempt(self, username: str, client_ip: str) -> int:
        """Seconds to wait when this attempt is refused; 0 when it may go ahead (it is counted)."""
        ...

    async def succeeded(self, username: str, client_ip: str) -> None:
        """The password was right: forget the count."""
        ...


def wait_seconds(
    failures: int, last_attempt: float, limit: int, settings: LoginSettings, now: float
) -> int:
    if failures < limit:
        return 0
    backoff: float = min(settings.max_backoff, BACKOFF_BASE_SECONDS * 2.0 ** (failures - limit))
    return max(0, math.ceil(last_attempt + backoff - now))


def throttle_keys(username: str, client_ip: str) -> tuple[str, str]:
    """The (username, IP) counter's key and the IP's. Hashed: a key name must not
    carry a username or an address into Redis dumps or logs."""
    return (
        hashlib.sha256(f"{username}\x00{client_ip}".encode()).hexdigest(),
        "ip:" + hashlib.sha256(client_ip.encode()).hexdigest(),
    )


class RedisLoginThrottle:
    def __init__(self, redis: Redis, settings: LoginSettings, prefix: str) -> None:
        self._settings = settings
        self._prefix = prefix + "login-failures:"
        self._begin = redis.register_script(_BEGIN_ATTEMPT)
        self._succeeded = redis.register_script(_SUCCEEDED)

    def _keys(self, username: str, client_ip: str) -> list[str]:
        return [self._prefix + key for key in throttle_keys(username, client_ip)]

    async def begin_attempt(self, username: str, client_ip: str) -> int:
        settings = self._settings
        wait = await self._begin(
            keys=self._keys(username, client_ip),
            args=[
                time.time(),
                BACKOFF_BASE_SECONDS,
                settings.max_backoff,
                settings.failure_window + settings.max_backoff,
                settings.max_failures,
                settings.max_failures_per_ip,
            ],
        )
        return int(wait)

    async def succeeded(self, username: str, client_ip: str) -> None:
        await self._succeeded(keys=self._keys(username, client_ip))


class MemoryLoginThrottle:
    """The embedded default's throttle: one process, no Redis (one event loop: atomic)."""

    def __init__(self, settings: LoginSettings) -> None:
        self._settings = settings
        self._entries: dict[str, tuple[int, float]] = {}

    async def begin_attempt(self, username: str, client_ip: str) -> int:
        settings = self._settings
        now = time.time()
        counted = []
        wait = 0
        for key, limit in zip(
            throttle_keys(username, client_ip),
            (settings.max_failures, settings.max_failures_per_ip),
            strict=True,
        ):
            failures, last = self._entries.get(key, (0, 0.0))
            if now - last > settings.failure_window + settings.max_backoff:
                failures = 0
            wait = max(wait, wait_seconds(failures, last, limit, settings, now))
            counted.append((key, failures + 1))
        if wait:
            return wait
        if len(self._entries) > 100_000:
            self._entries.clear()  # bounded memory beats perfect counting
        for key, failures in counted:
            self._entries[key] = (failures, now)
        return 0

    async def succeeded(self, username: str, client_ip: str) -> None:
        pair, ip = throttle_keys(username, client_ip)
        self._entries.pop(pair, None)
        failures, last = self._entries.get(ip, (0, 0.0))
        if failures > 0:
            self._entries[ip] = (failures - 1, last)
