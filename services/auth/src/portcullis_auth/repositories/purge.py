"""Deleting what no live token needs any more, in batches."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from portcullis_auth.db.models import (
    AccessToken,
    AuthorizationCode,
    DeviceAuthorization,
    Grant,
    RefreshToken,
    Revocation,
    SignInSession,
)


class PurgeRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def access_tokens(self, before: datetime, batch: int) -> int:
        """Access-token records expired before `before` (revoked ones included: they expire too)."""
        ids = select(AccessToken.jti).where(AccessToken.expires_at < before).limit(batch)
        result = await self._session.execute(delete(AccessToken).where(AccessToken.jti.in_(ids)))
        return int(result.rowcount)  # type: ignore[attr-defined]

    async def grants(self, before: datetime, batch: int) -> int:
        """Grants that ended (expired or revoked) before `before`, with their refresh tokens.

        A live family is never touched: its used tokens stay, since reuse
        detection needs them for as long as the family lives.
        """
        ended = or_(Grant.expires_at < before, Grant.revoked_at < before)
        ids = list(
            (await self._session.execute(select(Grant.id).where(ended).limit(batch))).scalars()
        )
        if not ids:
            return 0
        await self._session.execute(delete(RefreshToken).where(RefreshToken.grant_id.in_(ids)))
        await self._session.execute(delete(Grant).where(Grant.id.in_(ids)))
        return len(ids)

    async def revocations(self, before: datetime, batch: int) -> int:
        """Revocation entries whose tokens have all expired (the newest row always stays:
        its id is the sequence number Redis is compared with)."""
        newest = select(Revocation.id).order_by(Revocation.id.desc()).limit(1).scalar_subquery()
        ids = (
            select(Revocation.id)
            .where(Revocation.expires_at < before, Revocation.id != newest)
            .limit(batch)
        )
        result = await self._session.execute(delete(Revocation).where(Revocation.id.in_(ids)))
        return int(result.rowcount)  # type: ignore[attr-defined]

    async def authorization_codes(self, before: datetime, batch: int) -> int:
        """Codes expired before `before` (a late replay of one is refused as unknown)."""
        ids = select(AuthorizationCode.id).where(AuthorizationCode.expires_at < before).limit(batch)
        result = await self._session.execute(
            delete(AuthorizationCode).where(AuthorizationCode.id.in_(ids))
        )
        return int(result.rowcount)  # type: ignore[attr-defined]

    async def device_authorizations(self, before: datetime, batch: int) -> int:
        ids = (
            select(DeviceAuthorization.id)
            .where(DeviceAuthorization.expires_at < before)
            .limit(batch)
        )
        result = await self._session.execute(
            delete(DeviceAuthorization).where(DeviceAuthorization.id.in_(ids))
        )
        return int(result.rowcount)  # type: ignore[attr-defined]

    async def sign_in_sessions(self, before: datetime, batch: int) -> int:
        ids = select(SignInSession.id).where(SignInSession.expires_at < before).limit(batch)
        result = await self._session.execute(delete(SignInSession).where(SignInSession.id.in_(ids)))
        return int(result.rowcount)  # type: ignore[attr-defined]
