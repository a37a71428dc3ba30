"""The revocation list every resource service reads.

Postgres (at the auth service) is the truth; Redis holds the copy. Entries:
by `jti` and by `sid` (present means revoked), by user and by client
(a whole-second time T: tokens issued at or before T are revoked). A marker
key says the list is complete; without it the list cannot be trusted and the
check fails closed. One `MGET` answers all of it in one round trip.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError

from portcullis_shared.claims import AccessTokenClaims
from portcullis_shared.errors import GuardUnavailableError

DEFAULT_PREFIX = "portcullis:"


def _glob_escape(text: str) -> str:
    return "".join(f"\\{char}" if char in "*?[]\\" else char for char in text)


class RevocationKeys:
    """Key names, shared by the auth service (writer) and every reader.

    Entries are `{prefix}revoked:{kind}:{subject}`, kind being jti, sid, user or
    client. Each write is also announced on `feed` as lines of `{kind}:{subject}`
    (an *item*), which followers add to their filters.
    """

    def __init__(self, prefix: str = DEFAULT_PREFIX) -> None:
        self.prefix = prefix
        self.marker = f"{prefix}revocations:marker"
        self.sequence = f"{prefix}revocations:sequence"
        self.feed = f"{prefix}revocations:feed"
        """The pub/sub channel each write is announced on."""
        self.entries = f"{_glob_escape(prefix)}revoked:*"
        """A SCAN pattern matching every entry."""
        self._entry_prefix = f"{prefix}revoked:"

    def entry(self, kind: str, subject: str) -> str:
        return f"{self._entry_prefix}{kind}:{subject}"

    def jti(self, jti: str) -> str:
        return self.entry("jti", jti)

    def sid(self, sid: str) -> str:
        return self.entry("sid", sid)

    def user(self, user_id: str) -> str:
        return self.entry("user", user_id)

    def client(self, client_id: str) -> str:
        return self.entry("client", client_id)

    @staticmethod
    def item(kind: str, subject: str) -> str:
        return f"{kind}:{subject}"

    def item_of_entry(self, key: bytes | str) -> str:
        text = key.decode(errors="replace") if isinstance(key, bytes) else key
        return text.removeprefix(self._entry_prefix)

    @staticmethod
    def announcement(items: Iterable[str]) -> str:
        return "\n".join(items)

    @staticmethod
    def items_announced(message: bytes | str) -> list[str]:
        text = message.decode(errors="replace") if isinstance(message, bytes) else message
        return text.split("\n")


class RevocationList(Protocol):
    async def is_revoked(self, claims: AccessTokenClaims) -> bool:
        """True when any entry covers the token; raises GuardUnavailableError if unknowable."""
        ...


def token_entries(claims: AccessTokenClaims) -> list[tuple[str, str]]:
    """The (kind, subject) of every entry that may cover a token: its jti, its grant, its
    client and, for a user's token, its user."""
    entries = [("jti", claims.jti), ("sid", claims.sid), ("client", claims.client_id)]
    if not claims.is_client_token:
        entries.append(("user", claims.sub))
    return entries


def _covers(kind: str, issued_at: int, value: bytes | str | float | None) -> bool:
    """Whether an entry's value revokes a token: presence for jti and sid, "issued at or
    before the cutoff" for user and client."""
    if value is None:
        return False
    if kind in ("jti", "sid"):
        return True
    try:
        return issued_at <= int(value)
    except ValueError:
        return True  # an entry we cannot read is not evidence the token is fine


class RedisRevocationList:
    def __init__(self, redis: Redis, prefix: str = DEFAULT_PREFIX) -> None:
        self._redis = redis
        self.keys = RevocationKeys(prefix)

    async def is_revoked(self, claims: AccessTokenClaims) -> bool:
        entries = token_entries(claims)
        try:
            marker, *values = await self._redis.mget(
                [self.keys.marker, *(self.keys.entry(kind, subject) for kind, subject in entries)]
            )
        except (RedisError, OSError):
            raise GuardUnavailableError("the revocation list cannot be reached") from None
        if marker is None:
            raise GuardUnavailableError("the revocation list is being rebuilt")
        return any(
            _covers(kind, claims.iat, value)
            for (kind, _), value in zip(entries, values, strict=True)
        )


class MemoryRevocationList:
    """The embedded default's list: one process, no Redis, always complete."""

    def __init__(self) -> None:
        self._entries: dict[str, float] = {}
        """Item to value: expiry time for jti and sid, cutoff for user and client."""

    def revoke_token(self, jti: str, expires_at: float) -> None:
        self._entries[RevocationKeys.item("jti", jti)] = expires_at

    def revoke_grant(self, sid: str, expires_at: float) -> None:
        self._entries[RevocationKeys.item("sid", sid)] = expires_at

    def revoke_user(self, user_id: str, at: int) -> None:
        self._entries[RevocationKeys.item("user", user_id)] = at

    def revoke_client(self, client_id: str, at: int) -> None:
        self._entries[RevocationKeys.item("client", client_id)] = at

    async def is_revoked(self, claims: AccessTokenClaims) -> bool:
        now = time.time()
        for kind, subject in token_entries(claims):
            item = RevocationKeys.item(kind, subject)
            value = self._entries.get(item)
            if kind in ("jti", "sid") and value is not None and value < now:
                del self._entries[item]  # expired with the token it revoked
            elif _covers(kind, claims.iat, value):
                return True
        return False
