"""User passwords: argon2 through pwdlib, with equal work for unknown users.

Argon2 is the most expensive thing a request can ask for, so the checks are
rationed: `threads` run at once, off the event loop, and at most `queue` more
wait for a thread. Past that a check is refused at once
(`PasswordCheckQueueFullError`, answered 503 with `Retry-After`) instead of
waiting behind a flood. A waiting check whose caller has gone (`caller_gone`
completes: the client disconnected) leaves the queue without being run.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

T = TypeVar("T")

CallerGone = Callable[[], Awaitable[object]]
"""Completes when the caller is gone (its connection closed); never, while it waits."""


class PasswordCheckQueueFullError(Exception):
    """Too many password checks are waiting: try again shortly."""


class CallerGoneError(Exception):
    """The caller disconnected while its password check waited; it was not run."""


@dataclass(frozen=True, slots=True)
class PasswordCheck:
    valid: bool
    new_hash: str | None
    """A rehash under the current parameters, when the stored one is outdated."""


class PasswordHasher:
    def __init__(
        self, hasher: PasswordHash | None = None, *, threads: int = 1, queue: int = 16
    ) -> None:
        """`threads`: hashes run at once. Argon2 holds its memory for the whole hash, so
        the pool bounds memory under a burst of logins; one thread also keeps concurrent
        hashes from slowing each other on a busy core. `queue`: checks that may wait."""
        self._hasher = hasher or PasswordHash((Argon2Hasher(),))
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="argon2")
        self._threads = threads
        self._queue = queue
        self.running = 0
        """Hashes in a thread now (a cancelled caller's hash runs to its end)."""
        self.waiting = 0
        """Checks waiting for a thread."""
        self._turns: deque[asyncio.Future[None]] = deque()
        """The waiting checks' turns, first come first served."""
        # Verified when the user is unknown, so both answers cost one argon2 verify.
        self._dummy_hash = self._hasher.hash("portcullis-dummy-password")

    def close(self) -> None:
        self._pool.shutdown(wait=False)

    def hash(self, password: str) -> str:
        return self._hasher.hash(password)

    async def hash_async(self, password: str) -> str:
        return await self._run(None, self._hasher.hash, password)

    async def verify(
        self, password: str, stored_hash: str | None, *, caller_gone: CallerGone | None = None
    ) -> PasswordCheck:
        """Check `password`; with no stored hash, spend the same time and fail."""
        if stored_hash is None:
            await self._run(caller_gone, self._hasher.verify, password, self._dummy_hash)
            return PasswordCheck(valid=False, new_hash=None)
        valid, new_hash = await self._run(
            caller_gone, self._hasher.verify_and_update, password, stored_hash
        )
        return PasswordCheck(valid=valid, new_hash=new_hash if valid else None)

    async def _run(self, caller_gone: CallerGone | None, work: Callable[..., T], *args: str) -> T:
        await self._take_thread(caller_gone)
        loop = asyncio.get_running_loop()
        try:
            future: Future[T] = self._pool.submit(work, *args)
        except BaseException:
            self._give_thread_back()
            raise
        # The thread is given back when the hash ends, not when its caller stops waiting
        # for it: a cancelled request cannot make room for more hashes than threads.
        future.add_done_callback(lambda _: loop.call_soon_threadsafe(self._give_thread_back))
        return await asyncio.wrap_future(future)

    async def _take_thread(self, caller_gone: CallerGone | None) -> None:
        if self.running < self._threads and self.waiting == 0:
            self.running += 1
            return
        if self.waiting >= self._queue:
            raise PasswordCheckQueueFullError("too many password checks are waiting")
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._turns.append(turn)
        self.waiting += 1
        gone = None if caller_gone is None else asyncio.ensure_future(caller_gone())
        try:
            if gone is None:
                await turn
            else:
                await asyncio.wait((turn, gone), return_when=asyncio.FIRST_COMPLETED)
                if not turn.done():
                    raise CallerGoneError("the caller disconnected")
        except BaseException:
            if turn.done() and not turn.cancelled():
                self._give_thread_back()  # handed a thread just as it gave up: pass it on
            else:
                turn.cancel()  # skipped when its turn comes
            raise
        finally:
            self.waiting -= 1
            if gone is not None:
                gone.cancel()

    def _give_thread_back(self) -> None:
        while self._turns:
            turn = self._turns.popleft()
            if not turn.done():
                turn.set_result(None)  # the thread passes to this waiter, still counted
                return
        self.running -= 1
