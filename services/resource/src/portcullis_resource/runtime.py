"""What the running posts service holds for its lifetime."""

from __future__ import annotations

from dataclasses import dataclass

import httpx
from litestar.datastructures import State
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from portcullis_resource.settings import ResourceSettings
from portcullis_shared.sql import create_engine, create_sessionmaker


@dataclass(slots=True)
class ResourceRuntime:
    settings: ResourceSettings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    http_client: httpx.AsyncClient
    """Talks to the auth service for the login proxy."""

    @classmethod
    def create(
        cls, settings: ResourceSettings, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> ResourceRuntime:
        """`transport`: how the login proxy reaches the auth service (traced, when tracing is on)."""
        engine = create_engine(settings.database_url, pool_size=settings.database_pool_size)
        return cls(
            settings=settings,
            engine=engine,
            sessionmaker=create_sessionmaker(engine),
            http_client=httpx.AsyncClient(follow_redirects=False, transport=transport),
        )

    async def close(self) -> None:
        await self.http_client.aclose()
        await self.engine.dispose()


def runtime_of(state: State) -> ResourceRuntime:
    runtime: ResourceRuntime = state.runtime
    return runtime
