"""Access-token records of many requests written in one statement.

A client-credentials token is its request's only write. Its record goes to
one of a few writers; when all are busy it waits for the first to finish and
goes in its next batch. Under load one INSERT carries the records of dozens of
requests (and one commit's wait for the disk serves them all), and a request
alone is written at once, never held back by a timer. Each record is still
written before its token is handed out, and only while the client's row is
unchanged.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Sequence

from sqlalchemy.ext.asyncio import AsyncEngine

from portcullis_auth.db.direct import DirectPostgres
from portcullis_auth.repositories.postgres_token_store import PostgresTokenStore
from portcullis_auth.repositories.sql_token_store import SqlTokenStore
from portcullis_auth.repositories.token_store import AccessTokenRow

MAX_BATCH = 500
WRITERS = 4
"""Batches in flight at once: each commit waits for the disk, so one writer alone
would cap issuance at one batch per fsync."""

WriteBatch = Callable[[Sequence[tuple[AccessTokenRow, int]]], Awaitable[set[uuid.UUID]]]
"""Writes (record, client version) pairs, each committed on its own; the jtis written."""

_Pending = tuple[AccessTokenRow, int, "asyncio.Future[bool]"]


def batch_writer(engine: AsyncEngine, direct: DirectPostgres | None) -> WriteBatch:
    """Postgres: one statement per batch. Elsewhere: one per record, each on an
    autocommit connection of `engine`."""
    if direct is not None:

        async def write_at_once(batch: Sequence[tuple[AccessTokenRow, int]]) -> set[uuid.UUID]:
            async with direct.connection() as connection:
                return await PostgresTokenStore(connection).record_access_tokens(batch)

        return write_at_once

    async def write(batch: Sequence[tuple[AccessTokenRow, int]]) -> set[uuid.UUID]:
        async with engine.connect() as connection:
            autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
            return await SqlTokenStore(autocommit).record_access_tokens(batch)

    return write


class AccessTokenRecorder:
    """Writes access-token records for requests that write nothing else, in batches."""

    def __init__(self, write_batch: WriteBatch) -> None:
        self._write_batch = write_batch
        self._pending: list[_Pending] = []
        self._writing = 0
        """Writers that will still look at `_pending` before they stop."""
        self._tasks: set[asyncio.Task[None]] = set()  # held: the loop keeps only weak ones

    async def record(self, record: AccessTokenRow, client_version: int) -> bool:
        """Write `record` with the next batch; False when the client's row has changed
        since it was read at `client_version` (nothing written)."""
        written: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._pending.append((record, client_version, written))
        if self._writing < WRITERS:
            self._start_writer()
        return await written

    def _start_writer(self) -> None:
        self._writing += 1
        task = asyncio.create_task(self._write_pending())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _write_pending(self) -> None:
        try:
            # Stops as soon as it finds nothing pending, with no await in between:
            # a record added after that starts a writer of its own.
            while self._pending:
                batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
                await self._write(batch)
        except BaseException as exc:  # no connection, a failed batch, or shut down
            # The database is unreachable or the connection broke: what waits fails
            # now (503) rather than after every writer's timeout.
            self._fail(self._pending, exc)
            self._pending = []
            if not isinstance(exc, Exception):
                raise
        finally:
            self._writing -= 1

    async def _write(self, batch: list[_Pending]) -> None:
        try:
            jtis = await self._write_batch([(r, v) for r, v, _ in batch])
        except BaseException as exc:  # a failure, or cancelled at shutdown
            self._fail(batch, exc)
            raise
        for record, _, written in batch:
            if not written.done():  # a request that gave up no longer waits
                written.set_result(record.jti in jtis)

    @staticmethod
    def _fail(batch: list[_Pending], exc: BaseException) -> None:
        for _, _, written in batch:
            if written.done():
                continue
            if isinstance(exc, Exception):
                written.set_exception(exc)
            else:
                written.cancel()
