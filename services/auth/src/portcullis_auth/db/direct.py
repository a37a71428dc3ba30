"""Postgres without SQLAlchemy, for the token endpoint's hottest statements.

A refresh runs two fixed statements (find the token, rotate it) and a
client-credentials token one share of a batched INSERT. Through a SQLAlchemy
session each also paid a pool ping, BEGIN, COMMIT and ORM row loading: most of
a rotation's CPU time. Here each statement runs on a connection of a small
asyncpg pool, prepared once per connection (behind a transaction pooler, given
`prepared_statement_cache_size=0`, prepared unnamed with each execution), and
commits on its own; each is
written to be safe on its own (see `repositories/postgres_token_store.py`).
Everything else goes through SQLAlchemy, and SQLite (the embedded default) never
comes here.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine

from portcullis_shared.sql import CONNECT_TIMEOUT, STATEMENT_TIMEOUT

logger = logging.getLogger("portcullis.auth")

ACQUIRE_TIMEOUT = 5
"""Seconds to wait for a free connection, as for the SQLAlchemy pool; then 503."""


async def _keep_session(_: asyncpg.Connection) -> None:
    """Nothing to reset when a connection goes back: these statements change no
    session state. asyncpg's default reset is a round trip per release."""


def _asyncpg_options(engine: AsyncEngine) -> dict[str, Any]:
    """asyncpg.connect's arguments for the engine's URL, as SQLAlchemy would pass them."""
    _, options = engine.dialect.create_connect_args(engine.url)
    options = dict(options)
    options.pop("prepared_statement_name_func", None)
    # The URL's name for asyncpg's own option (0 for pgbouncer in transaction mode).
    cache_size = options.pop("prepared_statement_cache_size", None)
    if cache_size is not None:
        options["statement_cache_size"] = int(cache_size)
    return options


class DirectPostgres:
    """A small asyncpg pool on the engine's database, opened at first use."""

    def __init__(self, engine: AsyncEngine, max_size: int) -> None:
        self._options = _asyncpg_options(engine)
        self._max_size = max_size
        self._pool: asyncpg.Pool | None = None
        self._opening = asyncio.Lock()
        self._claimed = 0
        """Connections lent or being waited for."""

    def connection(self) -> DirectConnection:
        """A connection for one request's statements (`async with`)."""
        return DirectConnection(self)

    async def acquire(self) -> asyncpg.Connection:
        pool = self._pool or await self._open()
        must_wait = self._claimed >= self._max_size
        self._claimed += 1
        try:
            if not must_wait:
                # One is free (or may be opened, within CONNECT_TIMEOUT): there is no
                # wait to bound.
                return await pool.acquire()
            # asyncio.timeout rather than acquire(timeout=...), whose wait_for costs a
            # task. Past it: TimeoutError, answered 503.
            async with asyncio.timeout(ACQUIRE_TIMEOUT):
                return await pool.acquire()
        except BaseException:
            self._claimed -= 1
            raise

    async def release(self, connection: asyncpg.Connection) -> None:
        """Give a connection back. Never raises: the statements on it have committed,
        and their answer must not turn into an error (asyncpg closes a connection it
        could not take back)."""
        assert self._pool is not None  # it came from the pool
        self._claimed -= 1
        try:
            await self._pool.release(connection)
        except Exception as exc:  # noqa: BLE001 - logged; the pool replaces it
            logger.warning("a database connection was not given back: %s", type(exc).__name__)

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
                    **self._options,
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
        return await (await self._connected()).fetchrow(sql, *args)

    async def fetchcolumn(self, sql: str, *args: object) -> list[Any]:
        """The first column of every row."""
        return [row[0] for row in await (await self._connected()).fetch(sql, *args)]

    async def _connected(self) -> asyncpg.Connection:
        if self._connection is None:
            self._connection = await self._database.acquire()
        return self._connection
