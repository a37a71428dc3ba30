"""Recording revocations in the request's transaction (no Redis here)."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from portcullis_auth.db.models import Revocation, utcnow
from portcullis_auth.repositories.revocations import RevocationRepository


class RevocationRecorder:
    """Adds revocation rows; `recorded` is what must reach Redis after commit."""

    def __init__(self, session: AsyncSession, *, max_token_ttl: int) -> None:
        self._revocations = RevocationRepository(session)
        self._max_token_ttl = max_token_ttl
        self.recorded: list[Revocation] = []

    async def token(self, jti: uuid.UUID, expires_at: datetime) -> None:
        await self._add("jti", str(jti), None, expires_at)

    async def grant(self, sid: uuid.UUID, tokens_expire_by: datetime) -> None:
        await self._add("sid", str(sid), None, tokens_expire_by)

    async def user(self, user_id: uuid.UUID) -> None:
        await self._cutoff("user", str(user_id))

    async def client(self, client_id: str) -> None:
        await self._cutoff("client", client_id)

    async def _cutoff(self, kind: str, subject: str) -> None:
        now = utcnow()
        # Whole seconds: every token issued at or before this second is covered.
        await self._add(
            kind, subject, int(now.timestamp()), now + timedelta(seconds=self._max_token_ttl)
        )

    async def _add(self, kind: str, subject: str, cutoff: int | None, expires_at: datetime) -> None:
        row = await self._revocations.add(
            Revocation(
                kind=kind,
                subject=subject,
                cutoff=cutoff,
                expires_at=expires_at,
                created_at=utcnow(),
            )
        )
        self.recorded.append(row)
