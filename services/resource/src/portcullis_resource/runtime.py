"""What the running posts service holds for its lifetime."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from litestar.datastructures import State
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from portcullis_resource.settings import ResourceSettings
from portcullis_shared.sql import create_engine, create_sessionmaker


@dataclass(slots=True)
class ResourceRuntime:
    settings: ResourceSettings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]

    @classmethod
    def create(cls, settings: ResourceSettings) -> ResourceRuntime:
        engine = create_engine(settings.database_url)
        return cls(settings=settings, engine=engine, sessionmaker=create_sessionmaker(engine))

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """One session; committed before the response is built, rolled back on error."""
        async with self.sessionmaker() as session:
            yield session
            await session.commit()


def runtime_of(state: State) -> ResourceRuntime:
    runtime: ResourceRuntime = state.runtime
    return runtime
