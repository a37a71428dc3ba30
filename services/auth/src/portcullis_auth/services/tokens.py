"""Issuing access tokens (RFC 9068 JWTs) and refresh tokens, and rotating them."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from portcullis_auth.db.models import Grant, OAuthClient, RefreshToken, User, utcnow
from portcullis_auth.keys.keyring import KeyRing
from portcullis_auth.repositories.direct_tokens import DirectTokenStatements
from portcullis_auth.repositories.tokens import (
    AccessTokenRecord,
    RefreshTokenRecord,
    Rotation,
    TokenRepository,
)
from portcullis_auth.security.secrets import generate_secret, hash_secret
from portcullis_auth.services.revocations import RevocationService
from portcullis_auth.services.token_records import AccessTokenRecorder
from portcullis_auth.settings import TokenSettings
from portcullis_shared.scopes import format_scope


@dataclass(frozen=True, slots=True)
class IssuedAccessToken:
    token: str
    jti: uuid.UUID
    expires_in: int
    scopes: frozenset[str]


@dataclass(frozen=True, slots=True)
class TokenResponse:
    """RFC 6749 §5.1 successful response."""

    access_token: IssuedAccessToken
    refresh_token: str | None = None

    def to_dict(self) -> dict[str, object]:
        body: dict[str, object] = {
            "access_token": self.access_token.token,
            "token_type": "Bearer",
            "expires_in": self.access_token.expires_in,
            "scope": format_scope(self.access_token.scopes),
        }
        if self.refresh_token is not None:
            body["refresh_token"] = self.refresh_token
        return body


class ClientChangedError(Exception):
    """The client's row changed (or was revoked) after it was read: no token was
    recorded. Read the client again and start over."""

    def __init__(self, client_id: str) -> None:
        super().__init__(client_id)
        self.client_id = client_id


class TokenService:
    def __init__(
        self,
        session: AsyncSession,
        settings: TokenSettings,
        keyring: KeyRing,
        recorder: AccessTokenRecorder | None = None,
        direct: DirectTokenStatements | None = None,
    ) -> None:
        """`recorder`: where tokens issued as a request's `only_write` are recorded
        (else in `session`). `direct`: Postgres's statements for refresh tokens."""
        self._tokens = TokenRepository(session, direct)
        self._settings = settings
        self._keyring = keyring
        self._recorder = recorder
        self.revocations = RevocationService(session, settings)
        """Revocations this request made; they reach Redis once committed."""

    async def issue_access_token(
        self,
        *,
        client: OAuthClient,
        user: User | None,
        scopes: frozenset[str],
        audience: str,
        sid: uuid.UUID | None = None,
        ttl: int | None = None,
        only_write: bool = False,
    ) -> IssuedAccessToken:
        """Sign an access token and record it. `user` None: it speaks for the client.

        The record is written only while `client`'s row is unrevoked and at the version
        read, else `ClientChangedError`. `only_write`: the token is all the request
        writes, so its record may go in a batch with other requests' (see
        `AccessTokenRecorder`).
        """
        token, record = await self._sign(client, user, scopes, audience, sid, ttl)
        if only_write and self._recorder is not None:
            recorded = await self._recorder.record(record, client.version)
        else:
            recorded = await self._tokens.add_access_token(record, client.version)
        if not recorded:
            raise ClientChangedError(client.id)
        return token

    async def _sign(
        self,
        client: OAuthClient,
        user: User | None,
        scopes: frozenset[str],
        audience: str,
        sid: uuid.UUID | None,
        ttl: int | None,
    ) -> tuple[IssuedAccessToken, AccessTokenRecord]:
        """A signed access token and the record of it, not yet written."""
        key = await self._keyring.signing_key()
        now = utcnow()
        lifetime = ttl or self._settings.access_token_ttl
        issued_at = int(now.timestamp())
        jti = uuid.uuid4()
        sid = sid or jti
        claims = {
            "iss": self._settings.issuer,
            "sub": str(user.id) if user is not None else client.id,
            "aud": audience,
            "exp": issued_at + lifetime,
            "iat": issued_at,
            "jti": str(jti),
            "client_id": client.id,
            "scope": format_scope(scopes),
            "sid": str(sid),
        }
        token = IssuedAccessToken(
            token=key.sign_access_token(claims), jti=jti, expires_in=lifetime, scopes=scopes
        )
        record = AccessTokenRecord(
            jti=jti,
            sid=sid,
            client_id=client.id,
            user_id=None if user is None else user.id,
            scopes=sorted(scopes),
            audience=audience,
            kid=key.kid,
            created_at=now,
            expires_at=datetime.fromtimestamp(issued_at + lifetime, UTC),  # == exp
        )
        return token, record

    async def start_grant(
        self,
        *,
        client: OAuthClient,
        user: User | None,
        grant_type: str,
        scopes: frozenset[str],
        audience: str,
    ) -> tuple[Grant, str]:
        """Open a refresh family and hand out its first refresh token."""
        now = utcnow()
        grant = await self._tokens.add_grant(
            Grant(
                id=uuid.uuid4(),
                client_id=client.id,
                user_id=None if user is None else user.id,
                grant_type=grant_type,
                scopes=sorted(scopes),
                audience=audience,
                created_at=now,
                expires_at=now + timedelta(seconds=self._settings.refresh_family_ttl),
                revoked_at=None,
            )
        )
        refresh_token, row = self._new_refresh_token(grant, now)
        await self._tokens.add_refresh_token(row, grant.id)
        return grant, refresh_token

    async def find_refresh_token(
        self, refresh_token: str
    ) -> tuple[RefreshToken, Grant, User | None] | None:
        """The token, its grant (family) and the grant's user, if it has one."""
        return await self._tokens.find_refresh_token(hash_secret(refresh_token))

    async def rotate(
        self,
        token: RefreshToken,
        grant: Grant,
        *,
        client: OAuthClient,
        user: User | None,
        scopes: frozenset[str],
        audience: str,
    ) -> tuple[IssuedAccessToken, str] | None:
        """Use `token` up: a new access token of its family and the successor refresh
        token, written together. None when another request rotated it first;
        `ClientChangedError` when the client's row changed since it was read."""
        access, record = await self._sign(client, user, scopes, audience, grant.id, None)
        refresh_token, successor = self._new_refresh_token(grant, record.created_at)
        rotation = await self._tokens.rotate_and_record(token.id, successor, record, client.version)
        if rotation is Rotation.CLIENT_CHANGED:
            raise ClientChangedError(client.id)
        if rotation is Rotation.ALREADY_USED:
            return None
        return access, refresh_token

    async def successor_is_unused(self, token: RefreshToken) -> bool:
        child = await self._tokens.find_child(token.id)
        return child is not None and child.used_at is None and child.revoked_at is None

    def _new_refresh_token(self, grant: Grant, now: datetime) -> tuple[str, RefreshTokenRecord]:
        token = generate_secret()
        expires_at = min(
            now + timedelta(seconds=self._settings.refresh_token_ttl), grant.expires_at
        )
        row = RefreshTokenRecord(
            id=uuid.uuid4(), token_hash=hash_secret(token), created_at=now, expires_at=expires_at
        )
        return token, row
