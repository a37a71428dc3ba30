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
    AuthorizationCode,
    Client,
    DeviceAuthorization,
    FoundRefreshToken,
    IssuedAccessToken,
    RateLimited,
    RefreshFamily,
    StartedDeviceAuthorization,
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

    async def find(self, client_id: str) -> Client | None:
        """The active client `client_id`, unauthenticated (an authorization request names
        its client; only the redirect URI check stands for it)."""
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

    def refuse_if_busy(self, client_ip: str) -> None:
        """Raise at once if a check from `client_ip` would find no room to wait for
        (nothing counted, nothing read): a flood of logins costs its refusals nothing
        but this."""
        ...


class ClientRateLimit(Protocol):
    def spend(self, client: Client, client_ip: str | None) -> RateLimited | None:
        """Count one request of `client`'s from `client_ip`: None while within its
        budget, else the refusal (not counted: a refused request costs nothing)."""
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
        refresh: bool = True,
    ) -> tuple[uuid.UUID, str | None]:
        """Open a family (the grant): its id and, with `refresh`, its first refresh token."""
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


class CodeStore(Protocol):
    """Authorization codes (RFC 6749 §4.1), found by their value and used once."""

    async def find_code(self, code: str) -> AuthorizationCode | None: ...

    async def redeem_code(self, code_id: uuid.UUID) -> bool:
        """Mark the code used, now; False when it was used already."""
        ...

    async def link_family(self, code_id: uuid.UUID, family_id: uuid.UUID) -> None:
        """Note the family the code's use opened (what a second use will revoke)."""
        ...

    async def revoke_redeemed(self, code_id: uuid.UUID) -> None:
        """End what the code's first use issued (its family and every token of it)."""
        ...


class DeviceStore(Protocol):
    """Device authorizations (RFC 8628), started for a client and found by device code."""

    async def start(
        self, *, client: Client, scopes: frozenset[str], audience: str
    ) -> StartedDeviceAuthorization:
        """A new pending authorization, and what its device is told."""
        ...

    async def find_device_code(self, device_code: str) -> DeviceAuthorization | None: ...

    async def record_poll(self, authorization_id: uuid.UUID) -> bool:
        """Note a poll now; False (and the interval raised by 5 s) when it came sooner
        than the interval allows."""
        ...

    async def mark_issued(self, authorization_id: uuid.UUID, family_id: uuid.UUID) -> bool:
        """Approved becomes issued, once; False when it was not approved (any more)."""
        ...
