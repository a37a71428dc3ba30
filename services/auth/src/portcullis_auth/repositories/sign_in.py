"""Sign-in sessions of the auth service's own pages."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from portcullis_auth.db.models import SignInSession, User


class SignInRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, signed_in: SignInSession) -> None:
        self._session.add(signed_in)
        await self._session.flush()

    async def find(self, token_hash: str, now: datetime) -> tuple[SignInSession, User] | None:
        row = (
            await self._session.execute(
                select(SignInSession, User)
                .join(User, User.id == SignInSession.user_id)
                .where(SignInSession.token_hash == token_hash, SignInSession.expires_at > now)
            )
        ).one_or_none()
        return None if row is None else (row[0], row[1])

    async def remove(self, token_hash: str) -> None:
        await self._session.execute(
            delete(SignInSession).where(SignInSession.token_hash == token_hash)
        )

    async def remove_all_of(self, user_id: uuid.UUID) -> None:
        """Every session of the user: each browser they are signed in with."""
        await self._session.execute(delete(SignInSession).where(SignInSession.user_id == user_id))
