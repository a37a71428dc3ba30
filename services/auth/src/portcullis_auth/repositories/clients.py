from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from portcullis_auth.db.models import OAuthClient


class ClientRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def get(self, client_id: str) -> OAuthClient | None:
        return await self._session.get(OAuthClient, client_id)

    async def list(self) -> list[OAuthClient]:
        result = await self._session.execute(select(OAuthClient).order_by(OAuthClient.created_at))
        return list(result.scalars())

    async def find_by_name(self, name: str) -> OAuthClient | None:
        result = await self._session.execute(
            select(OAuthClient).where(OAuthClient.name == name, OAuthClient.revoked_at.is_(None))
        )
        return result.scalars().first()

    async def personal_access_client(self) -> OAuthClient | None:
        result = await self._session.execute(
            select(OAuthClient)
            .where(OAuthClient.personal_access.is_(True), OAuthClient.revoked_at.is_(None))
            .order_by(OAuthClient.created_at)
        )
        return result.scalars().first()

    async def add(self, client: OAuthClient) -> OAuthClient:
        self._session.add(client)
        await self._session.flush()
        return client

    async def save(self, client: OAuthClient) -> None:
        await self._session.flush()
