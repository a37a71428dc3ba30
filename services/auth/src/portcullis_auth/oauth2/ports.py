"""What the protocol core needs from the rest of the service (ports).

The core authenticates clients, checks passwords, finds refresh tokens and
issues tokens only through these Protocols; the services implement them
without importing anything from here (structural typing), and the HTTP
layer hands them over. Unit tests hand over in-memory fakes instead.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Protocol

from portcullis_auth.oauth2.audit import AuditEvent
from portcullis_auth.records import (
    Client,
    FoundRefreshToken,
    IssuedAccessToken,
    RefreshFamily,
    User,
)

CallerGone = Callable[[], Awaitable[object]]
"""Completes once the caller has disconnected."""

AuditHook = Callable[[AuditEvent], None]
"""Where the core reports what it did and refused (one call per event)."""


class ClientStore(Protocol):
    async def authenticate(self, client_id: str, secret: str | None) -> Client | None:
        """The active client `client_id`, if `secret` is its secret (None: a public
        client, which has none); else None."""
        ...


class UserAuthenticator(Protocol):
    async def authenticate(
        self,
        username: str,
        password: str,
        *,
        client_ip: str | None = None,
        caller_gone: CallerGone | None = None,
    ) -> User | None:
        """The active user with this password, or None (the same work either way)."""
        ...


class LoginThrottle(Protocol):
    async def begin_attempt(self, username: str, client_ip: str) -> int:
        """Seconds to wait when this attempt is refused; 0 when it may go ahead (counted)."""
        ...

    async def succeeded(self, username: str, client_ip: str) -> None:
        """The password was right: this attempt is not a failure."""
        ...

    async def withdraw(self, username: str, client_ip: str) -> None:
        """The password was never checked (the queue was full, the caller left): this
        attempt counts for nothing."""
        ...


class GrantStore(Protocol):
    """Refresh-token families: found by a token, re-checked, ended."""

    async def find_refresh_token(self, refresh_token: str) -> FoundRefreshToken | None: ...

    async def successor_is_unused(self, token_id: uuid.UUID) -> bool:
        """The token that replaced `token_id` is still unused and unrevoked."""
        ...

    async def revoke_family(self, family: RefreshFamily, reason: str) -> None:
        """End the family and every token it produced (kept even if the request fails)."""
        ...


class TokenIssuer(Protocol):
    async def issue_access_token(
        self,
        *,
        client: Client,
        user: User | None,
        scopes: frozenset[str],
        audience: str,
        sid: uuid.UUID | None = None,
        only_write: bool = False,
    ) -> IssuedAccessToken:
        """Sign and record an access token; `user` None: it speaks for the client.
        `only_write`: the token is all the request writes (its record may be batched)."""
        ...

    async def start_family(
        self,
        *,
        client: Client,
        user: User | None,
        grant_type: str,
        scopes: frozenset[str],
        audience: str,
    ) -> tuple[uuid.UUID, str]:
        """Open a refresh family: its id and its first refresh token."""
        ...

    async def rotate(
        self,
        found: FoundRefreshToken,
        *,
        client: Client,
        scopes: frozenset[str],
        audience: str,
    ) -> tuple[IssuedAccessToken, str] | None:
        """Use the refresh token up: a new access token of its family and the successor
        refresh token, written together; None when another request used it first."""
        ...
