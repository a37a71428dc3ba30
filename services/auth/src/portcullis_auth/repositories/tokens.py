"""Grants (refresh families), refresh tokens and access-token records."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import func, insert, literal, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from portcullis_auth.db.models import AccessToken, Grant, RefreshToken


class TokenRepository:
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

    async def add_access_token(self, record: AccessToken) -> None:
        self._session.add(record)
        await self._session.flush()

    async def add_refresh_token(self, token: RefreshToken) -> None:
        self._session.add(token)
        await self._session.flush()

    async def find_refresh_token(self, token_hash: str) -> tuple[RefreshToken, Grant] | None:
        result = await self._session.execute(
            select(RefreshToken, Grant)
            .join(Grant, Grant.id == RefreshToken.grant_id)
            .where(RefreshToken.token_hash == token_hash)
        )
        row = result.one_or_none()
        return None if row is None else (row[0], row[1])

    async def find_child(self, parent_id: uuid.UUID) -> RefreshToken | None:
        result = await self._session.execute(
            select(RefreshToken).where(RefreshToken.parent_id == parent_id)
        )
        return result.scalars().first()

    async def rotate_refresh_token(
        self, old_id: uuid.UUID, successor: RefreshToken, now: datetime
    ) -> bool:
        """Mark `old_id` used and insert its successor, in one statement.

        The UPDATE matches only an unused, unrevoked token, so of N concurrent
        rotations exactly one wins; the others match nothing and insert
        nothing. On Postgres both happen in one statement (a data-modifying
        CTE); SQLite has no such CTE but serialises writers, so there the
        same two steps run back to back in the transaction.
        """
        mark_used = (
            update(RefreshToken)
            .where(
                RefreshToken.id == old_id,
                RefreshToken.used_at.is_(None),
                RefreshToken.revoked_at.is_(None),
            )
            .values(used_at=now)
            .returning(RefreshToken.id, RefreshToken.grant_id)
        )
        if self._session.get_bind().dialect.name == "postgresql":
            used = mark_used.cte("used")
            statement = (
                insert(RefreshToken)
                .from_select(
                    ["id", "token_hash", "created_at", "expires_at", "grant_id", "parent_id"],
                    select(
                        literal(successor.id, RefreshToken.id.type),
                        literal(successor.token_hash, RefreshToken.token_hash.type),
                        literal(successor.created_at, RefreshToken.created_at.type),
                        literal(successor.expires_at, RefreshToken.expires_at.type),
                        used.c.grant_id,
                        used.c.id,
                    ),
                )
                .returning(RefreshToken.id)
            )
            inserted = (await self._session.execute(statement)).scalar_one_or_none()
            return inserted is not None
        row = (await self._session.execute(mark_used)).one_or_none()
        if row is None:
            return False
        await self._session.execute(
            insert(RefreshToken).values(
                id=successor.id,
                token_hash=successor.token_hash,
                created_at=successor.created_at,
                expires_at=successor.expires_at,
                grant_id=row.grant_id,
                parent_id=row.id,
            )
        )
        return True

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
