"""Users' rows."""

from __future__ import annotations

import uuid

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from portcullis_auth.db.models import User
from portcullis_auth.records import User as UserRecord


def user_record(row: User) -> UserRecord:
    """A user's row as the protocol core reads it (never the password hash)."""
    return UserRecord(id=row.id, is_admin=row.is_admin, active=row.disabled_at is None)


class UserRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def get(self, user_id: uuid.UUID) -> User | None:
        return await self._session.get(User, user_id)

    async def get_by_email(self, email: str) -> User | None:
        result = await self._session.execute(select(User).where(User.email == email))
        return result.scalar_one_or_none()

    async def add(self, user: User) -> User:
        self._session.add(user)
        await self._session.flush()
        return user

    async def set_password_hash(self, user: User, password_hash: str) -> None:
        """By id: `user` may come from another session."""
        await self._session.execute(
            update(User).where(User.id == user.id).values(password_hash=password_hash)
        )
