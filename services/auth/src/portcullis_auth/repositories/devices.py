"""Device authorizations (RFC 8628)."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from portcullis_auth.db.models import DeviceAuthorization, User
from portcullis_auth.records import DeviceAuthorization as DeviceRecord
from portcullis_auth.repositories.users import user_record

SLOW_DOWN_STEP = 5
"""Seconds each `slow_down` adds to the interval (RFC 8628 §3.5)."""


class DeviceRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, authorization: DeviceAuthorization) -> None:
        self._session.add(authorization)
        await self._session.flush()

    async def find_by_device_code(self, code_hash: str) -> DeviceRecord | None:
        row = (
            await self._session.execute(
                select(DeviceAuthorization, User)
                .outerjoin(User, User.id == DeviceAuthorization.user_id)
                .where(DeviceAuthorization.device_code_hash == code_hash)
            )
        ).one_or_none()
        if row is None:
            return None
        authorization, user = row
        return DeviceRecord(
            id=authorization.id,
            client_id=authorization.client_id,
            status=authorization.status,
            user=None if user is None else user_record(user),
            scopes=tuple(authorization.scopes),
            audience=authorization.audience,
            expires_at=authorization.expires_at,
        )

    async def pending_by_user_code(
        self, user_code: str, now: datetime
    ) -> DeviceAuthorization | None:
        result = await self._session.execute(
            select(DeviceAuthorization).where(
                DeviceAuthorization.user_code == user_code,
                DeviceAuthorization.status == "pending",
                DeviceAuthorization.expires_at > now,
            )
        )
        return result.scalars().first()

    async def user_code_in_use(self, user_code: str, now: datetime) -> bool:
        return await self.pending_by_user_code(user_code, now) is not None

    async def record_poll(self, authorization_id: uuid.UUID, now: datetime) -> bool:
        """Note a poll; False, and the interval raised, when it came too soon. The row is
        locked while read, so two polls at once cannot both pass."""
        row = await self._session.get(DeviceAuthorization, authorization_id, with_for_update=True)
        assert row is not None
        too_soon = row.last_polled_at is not None and now < row.last_polled_at + timedelta(
            seconds=row.interval
        )
        row.last_polled_at = now
        if too_soon:
            row.interval += SLOW_DOWN_STEP
        await self._session.flush()
        return not too_soon

    async def pending_by_id(
        self, authorization_id: uuid.UUID, now: datetime
    ) -> DeviceAuthorization | None:
        result = await self._session.execute(
            select(DeviceAuthorization).where(
                DeviceAuthorization.id == authorization_id,
                DeviceAuthorization.status == "pending",
                DeviceAuthorization.expires_at > now,
            )
        )
        return result.scalars().first()

    async def decide(
        self, authorization_id: uuid.UUID, user_id: uuid.UUID, approved: bool, now: datetime
    ) -> bool:
        """A pending, unexpired authorization becomes approved or denied by `user_id`,
        once."""
        result = await self._session.execute(
            update(DeviceAuthorization)
            .where(
                DeviceAuthorization.id == authorization_id,
                DeviceAuthorization.status == "pending",
                DeviceAuthorization.expires_at > now,
            )
            .values(status="approved" if approved else "denied", user_id=user_id)
        )
        return bool(cast("Any", result).rowcount == 1)

    async def mark_issued(self, authorization_id: uuid.UUID, grant_id: uuid.UUID) -> bool:
        result = await self._session.execute(
            update(DeviceAuthorization)
            .where(
                DeviceAuthorization.id == authorization_id,
                DeviceAuthorization.status == "approved",
            )
            .values(status="issued", grant_id=grant_id)
        )
        return bool(cast("Any", result).rowcount == 1)

    async def deny_approved_of(self, user_id: uuid.UUID) -> None:
        """Every device the user approved that has not fetched its tokens yet: denied."""
        await self._session.execute(
            update(DeviceAuthorization)
            .where(
                DeviceAuthorization.user_id == user_id,
                DeviceAuthorization.status == "approved",
            )
            .values(status="denied")
        )
