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
        self._lent = 0
        """Connections acquired and not yet released."""
        self._opening = asyncio.Lock()

    @classmethod
    def for_engine(cls, engine: AsyncEngine, max_size: int) -> DirectPostgres | None:
        """One for a Postgres engine; None for any other database."""
        return cls(engine, max_size) if engine.dialect.name == "postgresql" else None

    def connection(self) -> DirectConnection:
        """A connection for one request's statements (`async with`)."""
        return DirectConnection(self)

    async def acquire(self) -> asyncpg.Connection:
        pool = self._pool or await self._open()
        if self._lent < self._max_size:
            # A connection is free (or may be opened, within CONNECT_TIMEOUT): there
            # is no wait to bound.
            connection = await pool.acquire()
        else:
            # asyncio.timeout rather than acquire(timeout=...), whose wait_for costs a
            # task. Past it: TimeoutError, answered 503.
            async with asyncio.timeout(ACQUIRE_TIMEOUT):
                connection = await pool.acquire()
        self._lent += 1
        return connection

    async def release(self, connection: asyncpg.Connection) -> None:
        assert self._pool is not None  # it came from the pool
        self._lent -= 1
        await self._pool.release(connection)

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


class DirectConnection:
    """One request's statements on one pooled connection, taken at the first
    statement and given back at the end of `async with`. Each statement commits
    on its own; nothing is held open between them but the connection."""

    __slots__ = ("_connection", "_database")

    def __init__(self, database: DirectPostgres) -> None:
        self._database = database
        self._connection: asyncpg.Connection | None = None

    async def __aenter__(self) -> DirectConnection:
        return self

    async def __aexit__(self, *_: object) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            await self._database.release(connection)

    async def fetchrow(self, sql: str, *args: object) -> asyncpg.Record | None:
        connection = self._connection or await self._take()
        return await connection.fetchrow(sql, *args)

    async def fetchcolumn(self, sql: str, *args: object) -> list[Any]:
        """The first column of every row."""
        connection = self._connection or await self._take()
        return [row[0] for row in await connection.fetch(sql, *args)]

    async def _take(self) -> asyncpg.Connection:
        self._connection = await self._database.acquire()
        return self._connection
