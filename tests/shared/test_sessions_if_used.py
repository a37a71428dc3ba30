"""Request sessions: an untouched one serves the next request; a used one never does."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import insert, select, text
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from portcullis_shared.sql import SessionsIfUsed, create_engine, create_sessionmaker


class _Base(DeclarativeBase):
    pass


class _Thing(_Base):
    __tablename__ = "things"
    id: Mapped[int] = mapped_column(primary_key=True)


_things = _Base.metadata.tables[_Thing.__tablename__]  # `__table__` is typed as any FromClause


@pytest.fixture
async def engine() -> AsyncIterator[AsyncEngine]:
    engine = create_engine("sqlite+aiosqlite:///:memory:")
    async with engine.begin() as connection:
        await connection.run_sync(_things.metadata.create_all)
    yield engine
    await engine.dispose()


async def test_an_untouched_session_serves_the_next_request(engine: AsyncEngine) -> None:
    sessions = SessionsIfUsed(create_sessionmaker(engine))
    async with sessions() as first:
        pass
    async with sessions() as second:
        assert second is first


async def test_a_session_that_read_or_wrote_is_closed_and_never_handed_out_again(
    engine: AsyncEngine,
) -> None:
    sessions = SessionsIfUsed(create_sessionmaker(engine))
    async with sessions() as reader:
        await reader.execute(select(_things))
    async with sessions() as writer:
        assert writer is not reader
        assert not writer.in_transaction()
        await writer.execute(insert(_things).values(id=1))
        # Left with its transaction open (a failed request): rolled back, not reused.
    async with sessions() as after:
        assert after is not writer
        assert (await after.execute(text("SELECT count(*) FROM things"))).scalar_one() == 0


async def test_a_session_holding_objects_is_not_handed_out_again(engine: AsyncEngine) -> None:
    sessions = SessionsIfUsed(create_sessionmaker(engine))
    async with sessions() as committed:
        await committed.execute(insert(_things).values(id=2))
        await committed.commit()
    async with sessions() as holder:
        # Committed and empty: as good as new.
        assert holder is committed
        holder.add(_Thing(id=3))
    async with sessions() as after:
        assert after is not holder
        assert not after.new
