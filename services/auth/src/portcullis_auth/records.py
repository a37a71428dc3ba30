"""What the protocol core and the services hand each other: plain, immutable records.

The OAuth 2.0 core (`oauth2/`) reads clients, users and refresh-token families
and gets back issued tokens; the services read and write them. Both import
these records and nothing of each other, so the core stays free of the
database and the services free of the protocol. The records are copies, never
live rows: changing one changes nothing stored.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True, slots=True)
class Client:
    """An OAuth client as a token request sees it."""

    id: str
    grant_types: tuple[str, ...]
    scopes: tuple[str, ...]
    """Scopes the client may ask for."""
    default_scopes: tuple[str, ...]
    """Scopes granted when a request names none."""
    audiences: tuple[str, ...]
    """Audiences (RFC 8707 resources) the client may name; the first is the default."""
    redirect_uris: tuple[str, ...]
    """Where authorization answers may go (RFC 6749 §3.1.2)."""
    name: str
    """What users are shown on consent and device pages."""
    first_party: bool
    personal_access: bool
    """The client personal access tokens are issued to."""
    introspect: bool
    """May introspect (RFC 7662) tokens of other clients."""
    version: int
    """The row's version when read: a token is recorded for the client only while its
    row is still at this version (and unrevoked), so a copy cannot outlive a change."""
    secret_hash: str | None = field(repr=False)
    """SHA-256 hex of the secret; None for a public client."""
    previous_secret_hash: str | None = field(default=None, repr=False)
    """The secret before the last rotation (`client rotate-secret --overlap`)..."""
    previous_secret_expires_at: datetime | None = None
    """...accepted until then."""
    rate_limit: str | None = None
    """Requests per endpoint the client may make (`1200/minute`); None: the default."""

    @property
    def is_public(self) -> bool:
        return self.secret_hash is None


@dataclass(frozen=True, slots=True)
class User:
    id: uuid.UUID
    is_admin: bool
    active: bool
    """False once disabled: no login, no refresh."""


@dataclass(frozen=True, slots=True)
class RefreshFamily:
    """A refresh-token family (a grant): every access and refresh token of one login."""

    id: uuid.UUID
    client_id: str
    user_id: uuid.UUID | None
    grant_type: str
    """The grant that started the family (password, authorization_code, ...)."""
    scopes: tuple[str, ...]
    audience: str
    expires_at: datetime
    revoked_at: datetime | None


@dataclass(frozen=True, slots=True)
class RefreshToken:
    id: uuid.UUID
    family_id: uuid.UUID
    created_at: datetime
    expires_at: datetime
    used_at: datetime | None
    revoked_at: datetime | None


@dataclass(frozen=True, slots=True)
class FoundRefreshToken:
    """A refresh token, its family, and the family's user (None: a client's own)."""

    token: RefreshToken
    family: RefreshFamily
    user: User | None


@dataclass(frozen=True, slots=True)
class IssuedAccessToken:
    token: str = field(repr=False)
    jti: uuid.UUID
    sid: uuid.UUID
    """The grant it belongs to: its family, a personal access token, or itself."""
    expires_in: int
    scopes: frozenset[str]


@dataclass(frozen=True, slots=True)
class AuthorizationCode:
    """An authorization code as found by its value."""

    id: uuid.UUID
    client_id: str
    user: User
    redirect_uri: str
    scopes: tuple[str, ...]
    audience: str
    code_challenge: str
    expires_at: datetime
    used_at: datetime | None


@dataclass(frozen=True, slots=True)
class DeviceAuthorization:
    """A device authorization (RFC 8628) as its device polls for it."""

    id: uuid.UUID
    client_id: str
    status: str
    """pending, approved, denied or issued."""
    user: User | None
    """Who approved it (or denied it)."""
    scopes: tuple[str, ...]
    audience: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class StartedDeviceAuthorization:
    """What a device is told when it asks (RFC 8628 §3.2)."""

    device_code: str = field(repr=False)
    user_code: str
    """As people read it: two groups of four letters."""
    expires_in: int
    interval: int


LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1"})
"""Hosts (as `urlsplit(...).hostname` gives them) of the plain-http redirect URIs a native
app may register and use on any port: IP literals only, never `localhost`, which a
resolver could send elsewhere (RFC 8252 §7.3, §8.3)."""


@dataclass(frozen=True, slots=True)
class RateLimited:
    """A request refused for being past its budget: `limit` requests per `window` seconds,
    spent until `retry_after` seconds from now."""

    limit: int
    window: int
    retry_after: int
