"""Backing off repeated password failures per (normalised username, client IP).

Counted whether or not the user exists, so the answer says nothing about
accounts. After `max_failures`, each further attempt must wait a delay that
doubles with every failure (capped): a back-off, never an account lock, and
keyed by the client IP so one attacker cannot lock out the real user.
"""

from __future__ import annotations

import hashlib
import time
from typing import Protocol

from redis.asyncio import Redis

from portcullis_auth.settings import LoginSettings

BACKOFF_BASE_SECONDS = 15


class LoginThrottle(Protocol):
    async def retry_after(self, username: str, client_ip: str) -> int:
        """Seconds to wait before the next attempt may be checked; 0 when it may."""
        ...

    async def record_failure(self, username: str, client_ip: str) -> None: ...

    async def reset(self, username: str, client_ip: str) -> None: ...


def _delay(failures: int, last_failure: float, settings: LoginSettings, now: float) -> int:
    if failures < settings.max_failures:
        return 0
    backoff = min(
        settings.max_backoff, BACKOFF_BASE_SECONDS * 2 ** (failures - settings.max_failures)
    )
    return max(0, int(last_failure + backoff - now + 0.999))


def throttle_key(username: str, client_ip: str) -> str:
    # Hashed: a key name must not carry the username into Redis dumps or logs.
    return hashlib.sha256(f"{username}\x00{client_ip}".encode()).hexdigest()


class RedisLoginThrottle:
    def __init__(self, redis: Redis, settings: LoginSettings, prefix: str) -> None:
        self._redis = redis
        self._settings = settings
        self._prefix = prefix + "login-failures:"

    async def retry_after(self, username: str, client_ip: str) -> int:
        key = self._prefix + throttle_key(username, client_ip)
        failures, last = await self._redis.hmget(key, ["failures", "last"])
        if failures is None:
            return 0
        return _delay(int(failures), float(last or 0), self._settings, time.time())

    async def record_failure(self, username: str, client_ip: str) -> None:
        key = self._prefix + throttle_key(username, client_ip)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hincrby(key, "failures", 1)
            pipe.hset(key, "last", str(time.time()))
            pipe.expire(key, self._settings.failure_window + self._settings.max_backoff)
            await pipe.execute()

    async def reset(self, username: str, client_ip: str) -> None:
        await self._redis.delete(self._prefix + throttle_key(username, client_ip))


class MemoryLoginThrottle:
    """The embedded default's throttle: one process, no Redis."""

    def __init__(self, settings: LoginSettings) -> None:
        self._settings = settings
        self._entries: dict[str, tuple[int, float]] = {}

    async def retry_after(self, username: str, client_ip: str) -> int:
        entry = self._entries.get(throttle_key(username, client_ip))
        if entry is None:
            return 0
        now = time.time()
        if now - entry[1] > self._settings.failure_window + self._settings.max_backoff:
            return 0
        return _delay(entry[0], entry[1], self._settings, now)

    async def record_failure(self, username: str, client_ip: str) -> None:
        key = throttle_key(username, client_ip)
        failures, _ = self._entries.get(key, (0, 0.0))
        if len(self._entries) > 100_000:
            self._entries.clear()  # bounded memory beats perfect counting
        self._entries[key] = (failures + 1, time.time())

    async def reset(self, username: str, client_ip: str) -> None:
        self._entries.pop(throttle_key(username, client_ip), None)
