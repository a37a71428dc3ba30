from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from portcullis_auth.db.models import SigningKey


class SigningKeyRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def list(self) -> list[SigningKey]:
        """Every key, oldest activation first."""
        result = await self._session.execute(
            select(SigningKey).order_by(SigningKey.activates_at, SigningKey.created_at)
        )
        return list(result.scalars())

    async def add(self, key: SigningKey) -> SigningKey:
        self._session.add(key)
        await self._session.flush()
        return key

    async def flush(self) -> None:
        """Write the changes made to keys read through `list`."""
        await self._session.flush()
