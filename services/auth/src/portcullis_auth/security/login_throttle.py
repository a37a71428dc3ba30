"""Backing off repeated password attempts per (normalised username, client IP).

Counted whether or not the user exists, so the answer says nothing about
accounts. Every attempt is counted *before* the password is checked, in one
atomic step, so parallel guesses cannot all slip past the check; a success
resets the count. After `max_failures`, each further attempt must wait a delay
that doubles with every failure (capped): a back-off, never an account lock,
and keyed by the client IP so one attacker cannot lock out the real user.
"""

from __future__ import annotations

import hashlib
import math
import time
from typing import Protocol

from redis.asyncio import Redis

from portcullis_auth.settings import LoginSettings

BACKOFF_BASE_SECONDS = 15

# KEYS[1]: the counter. ARGV: now, max_failures, base, cap, ttl.
# Answers the seconds to wait (refused, nothing counted) or 0 (counted, go ahead).
_BEGIN_ATTEMPT = """
local failures = tonumber(redis.call('HGET', KEYS[1], 'failures') or '0')
local last = tonumber(redis.call('HGET', KEYS[1], 'last') or '0')
local now = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
if failures >= limit then
  local backoff = math.min(tonumber(ARGV[4]), tonumber(ARGV[3]) * 2 ^ (failures - limit))
  local wait = last + backoff - now
  if wait > 0 then return math.ceil(wait) end
end
redis.call('HSET', KEYS[1], 'failures', failures + 1, 'last', ARGV[1])
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[5]))
return 0
"""


class LoginThrottle(Protocol):
    async def begin_attempt(self, username: str, client_ip: str) -> int:
        """Seconds to wait when this attempt is refused; 0 when it may go ahead (it is counted)."""
        ...

    async def succeeded(self, username: str, client_ip: str) -> None:
        """The password was right: forget the count."""
        ...


def wait_seconds(failures: int, last_attempt: float, settings: LoginSettings, now: float) -> int:
    if failures < settings.max_failures:
        return 0
    backoff: float = min(
        settings.max_backoff, BACKOFF_BASE_SECONDS * 2.0 ** (failures - settings.max_failures)
    )
    return max(0, math.ceil(last_attempt + backoff - now))


def throttle_key(username: str, client_ip: str) -> str:
    # Hashed: a key name must not carry the username into Redis dumps or logs.
    return hashlib.sha256(f"{username}\x00{client_ip}".encode()).hexdigest()


class RedisLoginThrottle:
    def __init__(self, redis: Redis, settings: LoginSettings, prefix: str) -> None:
        self._redis = redis
        self._settings = settings
        self._prefix = prefix + "login-failures:"
        self._begin = redis.register_script(_BEGIN_ATTEMPT)

    async def begin_attempt(self, username: str, client_ip: str) -> int:
        settings = self._settings
        wait = await self._begin(
            keys=[self._prefix + throttle_key(username, client_ip)],
            args=[
                time.time(),
                settings.max_failures,
                BACKOFF_BASE_SECONDS,
                settings.max_backoff,
                settings.failure_window + settings.max_backoff,
            ],
        )
        return int(wait)

    async def succeeded(self, username: str, client_ip: str) -> None:
        await self._redis.delete(self._prefix + throttle_key(username, client_ip))


class MemoryLoginThrottle:
    """The embedded default's throttle: one process, no Redis (one event loop: atomic)."""

    def __init__(self, settings: LoginSettings) -> None:
        self._settings = settings
        self._entries: dict[str, tuple[int, float]] = {}

    async def begin_attempt(self, username: str, client_ip: str) -> int:
        key = throttle_key(username, client_ip)
        now = time.time()
        failures, last = self._entries.get(key, (0, 0.0))
        if now - last > self._settings.failure_window + self._settings.max_backoff:
            failures = 0
        wait = wait_seconds(failures, last, self._settings, now)
        if wait:
            return wait
        if len(self._entries) > 100_000:
            self._entries.clear()  # bounded memory beats perfect counting
        self._entries[key] = (failures + 1, now)
        return 0

    async def succeeded(self, username: str, client_ip: str) -> None:
        self._entries.pop(throttle_key(username, client_ip), None)
