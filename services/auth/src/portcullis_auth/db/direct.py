"""Postgres without SQLAlchemy, for the token endpoint's hottest statements.

A refresh runs two fixed statements (find the token, rotate it) and a
client-credentials token one share of a batched INSERT. Through a SQLAlchemy
session each also paid a pool ping, BEGIN, COMMIT and ORM row loading: most of
a rotation's CPU time. Here each statement runs on a connection of a small
asyncpg pool, prepared once per connection, and commits on its own; each is
written to be safe on its own (see `repositories/tokens.py`). Everything else
goes through SQLAlchemy, and SQLite (the embedded default) never comes here.
"""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine

CONNECT_TIMEOUT = 5
STATEMENT_TIMEOUT = 10
ACQUIRE_TIMEOUT = 5
"""Seconds to wait for a free connection, as for the SQLAlchemy pool; then 503."""

# The SQLAlchemy dialect's own options, which asyncpg.connect does not take.
_DIALECT_ONLY = ("prepared_statement_cache_size", "prepared_statement_name_func")


async def _keep_session(_: asyncpg.Connection) -> None:
    """Nothing to reset when a connection goes back: these statements change no
    session state. asyncpg's default reset is a round trip per release."""


class DirectPostgres:
    """A small asyncpg pool on the engine's database, opened at first use."""

    def __init__(self, engine: AsyncEngine, max_size: int) -> None:
        _, connect_kwargs = engine.dialect.create_connect_args(engine.url)
        for name in _DIALECT_ONLY:
            connect_kwargs.pop(name, None)
        self._connect_kwargs: dict[str, Any] = dict(connect_kwargs)
        self._max_size = max_size
        self._pool: asyncpg.Pool | None = None
        self._opening = asyncio.Lock()

    @classmethod
    def for_engine(cls, engine: AsyncEngine, max_size: int) -> DirectPostgres | None:
        """One for a Postgres engine; None for any other database."""
        return cls(engine, max_size) if engine.dialect.name == "postgresql" else None

    async def fetchrow(self, sql: str, *args: object) -> asyncpg.Record | None:
        pool, connection = await self._acquire()
        try:
            return await connection.fetchrow(sql, *args)
        finally:
            await pool.release(connection)

    async def fetchcolumn(self, sql: str, *args: object) -> list[Any]:
        """The first column of every row."""
        pool, connection = await self._acquire()
        try:
            return [row[0] for row in await connection.fetch(sql, *args)]
        finally:
            await pool.release(connection)

    async def _acquire(self) -> tuple[asyncpg.Pool, asyncpg.Connection]:
        pool = self._pool or await self._open()
        if pool.get_idle_size():
            return pool, await pool.acquire()  # one is free: there is no wait to bound
        # asyncio.timeout rather than acquire(timeout=...), whose wait_for costs a task.
        # Past it: TimeoutError, answered 503.
        async with asyncio.timeout(ACQUIRE_TIMEOUT):
            return pool, await pool.acquire()

    async def _open(self) -> asyncpg.Pool:
        async with self._opening:
            if self._pool is None:
                # min_size 0: opening connects nothing; connections come as needed
                # and go after a quiet spell.
                self._pool = await asyncpg.create_pool(
                    min_size=0,
                    max_size=self._max_size,
                    max_inactive_connection_lifetime=60,
                    reset=_keep_session,
                    timeout=CONNECT_TIMEOUT,
                    command_timeout=STATEMENT_TIMEOUT,
                    **self._connect_kwargs,
                )
            return self._pool

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
