"""Issuing access tokens (RFC 9068 JWTs) and refresh tokens, and rotating them.

`TokenService` is what the protocol core issues tokens with (its token issuer)
and finds and ends refresh families with (its grant store).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from portcullis_auth.db.models import Grant, utcnow
from portcullis_auth.keys.keyring import KeyRing
from portcullis_auth.records import (
    Client,
    FoundRefreshToken,
    IssuedAccessToken,
    RefreshFamily,
    User,
)
from portcullis_auth.repositories.sql_token_store import SqlTokenStore
from portcullis_auth.repositories.token_store import (
    AccessTokenRow,
    RefreshTokenRow,
    Rotation,
    TokenStore,
)
from portcullis_auth.repositories.tokens import TokenRepository
from portcullis_auth.security.secrets import generate_secret, hash_secret
from portcullis_auth.services.revocations import RevocationService
from portcullis_auth.services.token_records import AccessTokenRecorder
from portcullis_auth.settings import TokenSettings
from portcullis_shared.scopes import format_scope


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
        revocations: RevocationService,
        *,
        store: TokenStore | None = None,
        recorder: AccessTokenRecorder | None = None,
    ) -> None:
        """`revocations`: where this unit of work records what it revokes. `store`: where
        refresh tokens are found and rotated (default: through `session`). `recorder`:
        where tokens issued as a request's `only_write` are recorded (else `session`)."""
        self._tokens = TokenRepository(session)
        self._store = store or SqlTokenStore(session)
        self._settings = settings
        self._keyring = keyring
        self._recorder = recorder
        self._revocations = revocations

    async def issue_access_token(
        self,
        *,
        client: Client,
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
        """Open a family (the grant) and, with `refresh`, hand out its first refresh
        token. Without one the family still names the grant's tokens (their `sid`), so
        that they can be revoked together."""
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
        if not refresh:
            return grant.id, None
        refresh_token, row = self._new_refresh_token(grant.expires_at, now)
        await self._tokens.add_refresh_token(row, grant.id)
        return grant.id, refresh_token

    async def find_refresh_token(self, refresh_token: str) -> FoundRefreshToken | None:
        return await self._store.find_refresh_token(hash_secret(refresh_token))

    async def successor_is_unused(self, token_id: uuid.UUID) -> bool:
        return await self._tokens.successor_is_unused(token_id)

    async def revoke_family(self, family: RefreshFamily, reason: str) -> None:
        await self._revocations.revoke_grant(
            family.id, reason=reason, client_id=family.client_id, user_id=family.user_id
        )

    async def rotate(
        self,
        found: FoundRefreshToken,
        *,
        client: Client,
        scopes: frozenset[str],
        audience: str,
    ) -> tuple[IssuedAccessToken, str] | None:
        """Use the token up: a new access token of its family and the successor refresh
        token, written together. None when another request rotated it first;
        `ClientChangedError` when the client's row changed since it was read."""
        family = found.family
        access, record = await self._sign(client, found.user, scopes, audience, family.id, None)
        refresh_token, successor = self._new_refresh_token(family.expires_at, record.created_at)
        rotation = await self._store.rotate_and_record(
            found.token.id, successor, record, client.version
        )
        if rotation is Rotation.CLIENT_CHANGED:
            raise ClientChangedError(client.id)
        if rotation is Rotation.ALREADY_USED:
            return None
        return access, refresh_token

    async def _sign(
        self,
        client: Client,
        user: User | None,
        scopes: frozenset[str],
        audience: str,
        sid: uuid.UUID | None,
        ttl: int | None,
    ) -> tuple[IssuedAccessToken, AccessTokenRow]:
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
            token=key.sign_access_token(claims),
            jti=jti,
            sid=sid,
            expires_in=lifetime,
            scopes=scopes,
        )
        record = AccessTokenRow(
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

    def _new_refresh_token(
        self, family_expires_at: datetime, now: datetime
    ) -> tuple[str, RefreshTokenRow]:
        token = generate_secret()
        expires_at = min(
            now + timedelta(seconds=self._settings.refresh_token_ttl), family_expires_at
        )
        row = RefreshTokenRow(
            id=uuid.uuid4(), token_hash=hash_secret(token), created_at=now, expires_at=expires_at
        )
        return token, row
