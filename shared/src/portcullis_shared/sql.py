"""SQLAlchemy helpers both services use: engine, sessions, UTC timestamps.

Needs the `sql` extra (`portcullis-shared[sql]`); the guard itself does not.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, TypeDecorator, event
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


DEFAULT_POOL_SIZE = 20
"""Connections kept open per process, half as many again at peaks. Overflow connections
are closed when returned, so a pool smaller than the usual concurrency reconnects on
every request."""


CONNECT_TIMEOUT = 5
"""Seconds to open a Postgres connection."""
STATEMENT_TIMEOUT = 10
"""Seconds a Postgres statement may take before it is given up (a 503)."""


def behind_transaction_pooler(url: str) -> bool:
    """Whether the URL turns the prepared statement cache off
    (`?prepared_statement_cache_size=0`), as a connection pooler in transaction
    mode (PgBouncer's `pool_mode = transaction`) needs: there, consecutive
    transactions of one connection may run on different server connections, and a
    statement prepared on one is unknown to the next."""
    size = str(make_url(url).query.get("prepared_statement_cache_size", ""))
    return size.isdigit() and int(size) == 0


def _unnamed_statement() -> str:
    """The name SQLAlchemy prepares a statement under: "", Postgres's unnamed
    statement, which the next statement replaces."""
    return ""


def postgres_connect_args(url: str) -> dict[str, Any]:
    """asyncpg's connection arguments for the URL. Behind a transaction pooler,
    asyncpg's own statement cache is off too (its type lookups and pool pings
    would otherwise prepare a named statement in one round trip and run it in the
    next, perhaps on another server connection), and SQLAlchemy prepares each
    statement unnamed. asyncpg numbers named statements per connection, so two
    clients on one server connection would both prepare `__asyncpg_stmt_1__`;
    unique names avoid that but stay behind on whichever server connection the
    transaction ran on, since asyncpg closes a statement only at its connection's
    next prepare, by then perhaps on another. With the cache off asyncpg parses an
    unnamed statement again in the same message as its execution, so it needs
    nothing of the server connection before."""
    args: dict[str, Any] = {"timeout": CONNECT_TIMEOUT, "command_timeout": STATEMENT_TIMEOUT}
    if behind_transaction_pooler(url):
        args["statement_cache_size"] = 0
        args["prepared_statement_name_func"] = _unnamed_statement
    return args


def create_engine(
    url: str, *, pool_size: int = DEFAULT_POOL_SIZE, max_overflow: int | None = None
) -> AsyncEngine:
    """An async engine; SQLite gets foreign keys on and one writer at a time.
    Postgres: `pool_size` connections kept, `max_overflow` (default half as many)
    more at peaks."""
    if is_sqlite(url):
        engine = create_async_engine(url, connect_args={"timeout": 30}, hide_parameters=True)

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.close()

        return engine
    return create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size // 2 if max_overflow is None else max_overflow,
        pool_pre_ping=True,
        hide_parameters=True,  # SQL errors must never echo secrets into logs
        pool_timeout=5,
        connect_args=postgres_connect_args(url),
    )


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


class SessionsIfUsed:
    """Sessions for requests that may not touch the database at all (a client-
    credentials token from a cached client, a refresh on Postgres).

    `async with sessions() as session:` closes the session on leaving only if it
    began a transaction: closing an unused one costs a greenlet switch and a
    shielded task. A session that began none and holds no object is as good as
    new, so it goes back on a short list for the next request instead of being
    built again (building one costs a few percent of such a request).
    """

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], spare: int = 64) -> None:
        self._sessionmaker = sessionmaker
        self._spare: list[AsyncSession] = []
        self._max_spare = spare

    def __call__(self) -> _SessionIfUsed:
        session = self._spare.pop() if self._spare else self._sessionmaker()
        return _SessionIfUsed(self, session)

    async def _done(self, session: AsyncSession) -> None:
        if session.in_transaction():
            await session.close()
        elif not session.identity_map and not session.new and len(self._spare) < self._max_spare:
            self._spare.append(session)


class _SessionIfUsed:
    __slots__ = ("_session", "_sessions")

    def __init__(self, sessions: SessionsIfUsed, session: AsyncSession) -> None:
        self._sessions = sessions
        self._session = session

    async def __aenter__(self) -> AsyncSession:
        return self._session

    async def __aexit__(self, *_: object) -> None:
        await self._sessions._done(self._session)


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware datetime on every backend (SQLite stores naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


def utcnow() -> datetime:
    return datetime.now(UTC)
