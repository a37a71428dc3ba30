"""The revocations table: append, read in order, find the newest."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from portcullis_auth.db.models import Revocation


class RevocationRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, revocation: Revocation) -> Revocation:
        self._session.add(revocation)
        await self._session.flush()
        return revocation

    async def latest_id(self) -> int:
        result = await self._session.execute(select(func.coalesce(func.max(Revocation.id), 0)))
        return int(result.scalar_one())

    async def latest_cutoff(self, kind: str, subject: str) -> int | None:
        """The newest "issued at or before" second for a user or a client, if any."""
        result = await self._session.execute(
            select(func.max(Revocation.cutoff)).where(
                Revocation.kind == kind, Revocation.subject == subject
            )
        )
        return result.scalar_one_or_none()

    async def count_live_after(self, after_id: int, now: datetime) -> int:
        """How many unexpired entries have an id above `after_id`."""
        result = await self._session.execute(
            select(func.count())
            .select_from(Revocation)
            .where(Revocation.id > after_id, Revocation.expires_at > now)
        )
        return int(result.scalar_one())

    async def live_after(self, after_id: int, now: datetime, limit: int) -> list[Revocation]:
        """Unexpired entries with an id above `after_id`, in order."""
        result = await self._session.execute(
            select(Revocation)
            .where(Revocation.id > after_id, Revocation.expires_at > now)
            .order_by(Revocation.id)
            .limit(limit)
        )
        return list(result.scalars())
