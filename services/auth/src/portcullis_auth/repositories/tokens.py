"""Grants (refresh families, personal access tokens), refresh tokens and access-token records."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, cast

from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from portcullis_auth.db.models import AccessToken, Grant, RefreshToken
from portcullis_auth.repositories.sql_token_store import RECORD_IF_CLIENT_UNCHANGED, ROW_COLUMNS
from portcullis_auth.repositories.token_store import AccessTokenRow, RefreshTokenRow


class TokenRepository:
    """Statements of the request's session; the hottest ones are the token store's
    (`token_store.py`)."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add_grant(self, grant: Grant) -> Grant:
        self._session.add(grant)
        await self._session.flush()
        return grant

    async def get_grant(self, grant_id: uuid.UUID) -> Grant | None:
        return await self._session.get(Grant, grant_id)

    async def get_access_token(self, jti: uuid.UUID) -> AccessToken | None:
        return await self._session.get(AccessToken, jti)

    async def latest_token_expiry(self, sid: uuid.UUID) -> datetime | None:
        result = await self._session.execute(
            select(func.max(AccessToken.expires_at)).where(AccessToken.sid == sid)
        )
        return result.scalar_one_or_none()

    async def revoke_access_token(self, jti: uuid.UUID, now: datetime) -> None:
        await self._session.execute(
            update(AccessToken)
            .where(AccessToken.jti == jti, AccessToken.revoked_at.is_(None))
            .values(revoked_at=now)
        )

    async def revoke_all_of(
        self, *, now: datetime, user_id: uuid.UUID | None = None, client_id: str | None = None
    ) -> None:
        """Mark every grant, refresh token and access token of a user or a client revoked."""
        grant_filter = (
            Grant.user_id == user_id if user_id is not None else Grant.client_id == client_id
        )
        token_filter = (
            AccessToken.user_id == user_id
            if user_id is not None
            else AccessToken.client_id == client_id
        )
        grants = select(Grant.id).where(grant_filter).scalar_subquery()
        await self._session.execute(
            update(RefreshToken)
            .where(RefreshToken.grant_id.in_(grants), RefreshToken.revoked_at.is_(None))
            .values(revoked_at=now)
        )
        await self._session.execute(
            update(Grant).where(grant_filter, Grant.revoked_at.is_(None)).values(revoked_at=now)
        )
        await self._session.execute(
            update(AccessToken)
            .where(token_filter, AccessToken.revoked_at.is_(None))
            .values(revoked_at=now)
        )

    async def personal_access_grants(
        self, user_id: uuid.UUID, client_id: str, now: datetime
    ) -> list[Grant]:
        """A user's live personal access tokens, newest first."""
        result = await self._session.execute(
            select(Grant)
            .where(
                Grant.user_id == user_id,
                Grant.client_id == client_id,
                Grant.revoked_at.is_(None),
                Grant.expires_at > now,
            )
            .order_by(Grant.created_at.desc())
        )
        return list(result.scalars())

    async def add_access_token(self, record: AccessTokenRow, client_version: int) -> bool:
        """Record an access token, but only while its client's row is unrevoked and still
        at `client_version`; False when it is not (nothing written)."""
        params = {name: getattr(record, name) for name in ROW_COLUMNS}
        result = await self._session.execute(
            RECORD_IF_CLIENT_UNCHANGED, {**params, "client_version": client_version}
        )
        return bool(cast("Any", result).rowcount == 1)

    async def add_refresh_token(self, token: RefreshTokenRow, grant_id: uuid.UUID) -> None:
        await self._session.execute(
            insert(RefreshToken).values(
                id=token.id,
                token_hash=token.token_hash,
                grant_id=grant_id,
                created_at=token.created_at,
                expires_at=token.expires_at,
            )
        )

    async def successor_is_unused(self, parent_id: uuid.UUID) -> bool:
        """The token that replaced `parent_id` is still unused and unrevoked."""
        result = await self._session.execute(
            select(RefreshToken.id).where(
                RefreshToken.parent_id == parent_id,
                RefreshToken.used_at.is_(None),
                RefreshToken.revoked_at.is_(None),
            )
        )
        return result.first() is not None

    async def revoke_grant(self, grant_id: uuid.UUID, now: datetime) -> None:
        """Revoke a family: the grant, its refresh tokens and its access tokens."""
        await self._session.execute(
            update(Grant)
            .where(Grant.id == grant_id, Grant.revoked_at.is_(None))
            .values(revoked_at=now)
        )
        await self._session.execute(
            update(RefreshToken)
            .where(RefreshToken.grant_id == grant_id, RefreshToken.revoked_at.is_(None))
            .values(revoked_at=now)
        )
        await self._session.execute(
            update(AccessToken)
            .where(AccessToken.sid == grant_id, AccessToken.revoked_at.is_(None))
            .values(revoked_at=now)
        )
