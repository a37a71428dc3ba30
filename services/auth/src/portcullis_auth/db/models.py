"""SQLAlchemy models of the auth service.

Relationships are not declared: repositories join explicitly, so no query
is issued behind the caller's back. Times are timezone-aware UTC.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, Integer, LargeBinary, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from portcullis_shared.sql import UTCDateTime, utcnow

__all__ = ["utcnow"]


class Base(DeclarativeBase):
    type_annotation_map: dict[Any, Any] = {  # noqa: RUF012 - SQLAlchemy reads it as a class attribute
        datetime: UTCDateTime(),
        list[str]: JSON(),
    }


class User(Base):
    __tablename__ = "users"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    is_admin: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime]
    disabled_at: Mapped[datetime | None]


class OAuthClient(Base):
    __tablename__ = "oauth_clients"

    id: Mapped[str] = mapped_column(String(100), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    secret_hash: Mapped[str | None] = mapped_column(String(64))
    """SHA-256 hex of the secret; None for a public client."""
    previous_secret_hash: Mapped[str | None] = mapped_column(String(64))
    """The secret before the last rotation, accepted until `previous_secret_expires_at`."""
    previous_secret_expires_at: Mapped[datetime | None]
    grant_types: Mapped[list[str]]
    scopes: Mapped[list[str]]
    """Scopes the client may ask for."""
    default_scopes: Mapped[list[str]]
    """Scopes granted when a request names none."""
    audiences: Mapped[list[str]]
    """Audiences (RFC 8707 resources) the client may name; the first is the default."""
    redirect_uris: Mapped[list[str]]
    first_party: Mapped[bool] = mapped_column(default=False)
    personal_access: Mapped[bool] = mapped_column(default=False)
    """The client personal access tokens are issued to."""
    introspect: Mapped[bool] = mapped_column(default=False)
    """May introspect (RFC 7662) tokens of other clients."""
    rate_limit: Mapped[str | None] = mapped_column(String(40))
    """Requests per endpoint the client may make (`1200/minute`); None: the default."""
    created_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]
    version: Mapped[int] = mapped_column(default=1, server_default="1")
    """Raised by every change. An access token is recorded only if, as its record is
    written, the client's row still has the version it was authenticated with: a
    cached copy of the row cannot outlive a change that has committed."""

    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012 - SQLAlchemy reads it here

    @property
    def is_public(self) -> bool:
        return self.secret_hash is None


class SigningKey(Base):
    __tablename__ = "signing_keys"

    kid: Mapped[str] = mapped_column(String(64), primary_key=True)
    algorithm: Mapped[str] = mapped_column(String(16))
    public_jwk: Mapped[dict[str, Any]] = mapped_column(JSON())
    sealed_private_key: Mapped[bytes] = mapped_column(LargeBinary())
    """Nonce and AES-256-GCM ciphertext of the PEM private key; the kid is the AAD."""
    created_at: Mapped[datetime]
    activates_at: Mapped[datetime]


class Grant(Base):
    """A refresh-token family or a personal access token: the `sid` of its tokens."""

    __tablename__ = "grants"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    client_id: Mapped[str] = mapped_column(ForeignKey("oauth_clients.id"))
    user_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"))
    grant_type: Mapped[str] = mapped_column(String(100))
    scopes: Mapped[list[str]]
    audience: Mapped[str] = mapped_column(String(200))
    name: Mapped[str | None] = mapped_column(String(200))
    """A personal access token's name; None for refresh families."""
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]

    __table_args__ = (
        Index("ix_grants_user_id", "user_id"),
        Index("ix_grants_client_id", "client_id"),
    )


class RefreshToken(Base):
    __tablename__ = "refresh_tokens"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    """SHA-256 hex of the token; the token itself is never stored."""
    grant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("grants.id", ondelete="CASCADE"))
    parent_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("refresh_tokens.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]

    __table_args__ = (
        Index("ix_refresh_tokens_grant_id", "grant_id"),
        Index("ix_refresh_tokens_parent_id", "parent_id"),
    )


class AccessToken(Base):
    """A record of every access token issued, so it can be listed and revoked."""

    __tablename__ = "access_tokens"

    jti: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    sid: Mapped[uuid.UUID]
    client_id: Mapped[str] = mapped_column(String(100))
    user_id: Mapped[uuid.UUID | None]
    scopes: Mapped[list[str]]
    audience: Mapped[str] = mapped_column(String(200))
    kid: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]

    __table_args__ = (
        Index("ix_access_tokens_sid", "sid"),
        Index("ix_access_tokens_user_id", "user_id"),
        Index("ix_access_tokens_client_id", "client_id"),
        Index("ix_access_tokens_expires_at", "expires_at"),
    )


class Revocation(Base):
    """One revocation, in the order it happened: the source of the Redis list.

    `kind` is jti, sid, user or client. For jti and sid, `subject` is the
    token or grant id and the entry matters until `expires_at`; for user and
    client, `cutoff` is the whole second at or before which tokens are revoked.
    The id is the sequence number Redis is compared with.
    """

    __tablename__ = "revocations"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    kind: Mapped[str] = mapped_column(String(10))
    subject: Mapped[str] = mapped_column(String(100))
    cutoff: Mapped[int | None]
    expires_at: Mapped[datetime]
    created_at: Mapped[datetime]

    __table_args__ = (
        Index("ix_revocations_expires_at", "expires_at"),
        Index("ix_revocations_kind_subject", "kind", "subject"),
    )


class SignInSession(Base):
    """A browser signed in to the auth service's own pages (sign-in, consent, devices)."""

    __tablename__ = "sign_in_sessions"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    """SHA-256 hex of the session cookie; the cookie itself is never stored."""
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]

    __table_args__ = (Index("ix_sign_in_sessions_user_id", "user_id"),)


class Consent(Base):
    """The scopes a user allowed a client: asked again only for more."""

    __tablename__ = "consents"

    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    client_id: Mapped[str] = mapped_column(
        String(100), ForeignKey("oauth_clients.id", ondelete="CASCADE"), primary_key=True
    )
    scopes: Mapped[list[str]]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class AuthorizationCode(Base):
    """An authorization code (RFC 6749 §4.1.2): single use, short-lived, bound to its
    client, redirect URI and PKCE challenge."""

    __tablename__ = "authorization_codes"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    client_id: Mapped[str] = mapped_column(String(100), ForeignKey("oauth_clients.id"))
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    redirect_uri: Mapped[str] = mapped_column(String(2000))
    scopes: Mapped[list[str]]
    audience: Mapped[str] = mapped_column(String(200))
    code_challenge: Mapped[str] = mapped_column(String(128))
    """The S256 challenge (RFC 7636 §4.2) the verifier must answer."""
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
    grant_id: Mapped[uuid.UUID | None]
    """The refresh family its redemption opened: revoked when the code is used again."""

    __table_args__ = (Index("ix_authorization_codes_expires_at", "expires_at"),)


class DeviceAuthorization(Base):
    """A device authorization request (RFC 8628 §3.1) and what became of it."""

    __tablename__ = "device_authorizations"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    device_code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_code: Mapped[str] = mapped_column(String(16))
    """Normalised: upper case, no separator."""
    client_id: Mapped[str] = mapped_column(String(100), ForeignKey("oauth_clients.id"))
    scopes: Mapped[list[str]]
    audience: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16))
    """pending, approved, denied or issued."""
    user_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    interval: Mapped[int]
    """Seconds the device must wait between polls (raised by each slow_down)."""
    last_polled_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    grant_id: Mapped[uuid.UUID | None]

    __table_args__ = (
        Index("ix_device_authorizations_user_code", "user_code"),
        Index("ix_device_authorizations_expires_at", "expires_at"),
    )
