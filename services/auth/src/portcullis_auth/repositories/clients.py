"""OAuth clients' rows."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from portcullis_auth.db.models import OAuthClient
from portcullis_auth.records import Client


def client_record(row: OAuthClient) -> Client:
    """A client's row as the protocol core reads it: a copy, detached from the row."""
    return Client(
        id=row.id,
        grant_types=tuple(row.grant_types),
        scopes=tuple(row.scopes),
        default_scopes=tuple(row.default_scopes),
        audiences=tuple(row.audiences),
        redirect_uris=tuple(row.redirect_uris),
        name=row.name,
        first_party=row.first_party,
        personal_access=row.personal_access,
        introspect=row.introspect,
        version=row.version,
        secret_hash=row.secret_hash,
        previous_secret_hash=row.previous_secret_hash,
        previous_secret_expires_at=row.previous_secret_expires_at,
        rate_limit=row.rate_limit,
    )


class ClientRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def get(self, client_id: str) -> OAuthClient | None:
        return await self._session.get(OAuthClient, client_id)

    async def get_active_record(self, client_id: str) -> Client | None:
        """The unrevoked client `client_id`, as a record."""
        row = await self.get(client_id)
        return None if row is None or row.revoked_at is not None else client_record(row)

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
