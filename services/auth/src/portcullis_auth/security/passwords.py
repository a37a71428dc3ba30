"""User passwords: argon2 through pwdlib, with equal work for unknown users.

Argon2 is the most expensive thing a request can ask for, so checks are
rationed: `threads` run at once, off the event loop, and at most `queue` more
wait for a thread, of which at most `queue_per_caller` for one caller (one
client address). Past that a check is refused at once
(`PasswordCheckQueueFullError`, answered 503 with `Retry-After`) instead of
waiting behind a flood. A waiting check whose caller has gone (`caller_gone`
completes: the client disconnected) leaves the queue without being run.

The hashing threads run at the lowest CPU priority (nice 19, where the system lets a
thread have its own): on a core the event loop shares with them, argon2 takes what
token requests leave, so a flood of logins slows logins, not every other request.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

T = TypeVar("T")

CallerGone = Callable[[], Awaitable[object]]
"""Completes when the caller is gone (its connection closed); never, while it waits."""


class PasswordCheckQueueFullError(Exception):
    """Too many password checks are waiting: try again in `retry_after` seconds."""

    def __init__(self, retry_after: int) -> None:
        super().__init__("too many password checks are waiting")
        self.retry_after = retry_after


class CallerGoneError(Exception):
    """The caller disconnected while its password check waited; it was not run."""


@dataclass(frozen=True, slots=True)
class PasswordCheck:
    valid: bool
    new_hash: str | None
    """A rehash under the current parameters, when the stored one is outdated."""


LOWEST_PRIORITY = 19


def yield_the_core() -> None:
    """Run the calling thread at the lowest CPU priority (Linux gives each thread its
    own nice value; elsewhere this does nothing)."""
    with contextlib.suppress(OSError, AttributeError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), LOWEST_PRIORITY)


class PasswordHasher:
    def __init__(
        self,
        hasher: PasswordHash | None = None,
        *,
        threads: int = 1,
        queue: int = 16,
        queue_per_caller: int = 4,
    ) -> None:
        """`threads`: hashes run at once. Argon2 holds its memory for the whole hash, so
        the pool bounds memory under a burst of logins; one thread also keeps concurrent
        hashes from slowing each other on a busy core. `queue`: checks that may wait;
        `queue_per_caller`: of which for one caller."""
        self._hasher = hasher or PasswordHash((Argon2Hasher(),))
        self._pool = ThreadPoolExecutor(
            max_workers=threads, thread_name_prefix="argon2", initializer=yield_the_core
        )
        self._threads = asyncio.Semaphore(threads)
        self._thread_count = threads
        self._queue = queue
        self._queue_per_caller = queue_per_caller
        self.running = 0
        """Hashes in a thread now (a cancelled caller's hash runs to its end)."""
        self.waiting = 0
        """Checks waiting for a thread."""
        self._waiting_by_caller: Counter[str] = Counter()
        self._seconds_per_hash = 0.25
        """A running average, for telling a refused caller when to come back."""
        # Verified when the user is unknown, so both answers cost one argon2 verify.
        self._dummy_hash = self._hasher.hash("portcullis-dummy-password")

    def close(self) -> None:
        self._pool.shutdown(wait=False)

    def hash(self, password: str) -> str:
        return self._hasher.hash(password)

    async def hash_async(self, password: str) -> str:
        return await self._run(self._hasher.hash, password)

    async def verify(
        self,
        password: str,
        stored_hash: str | None,
        *,
        caller: str | None = None,
        caller_gone: CallerGone | None = None,
    ) -> PasswordCheck:
        """Check `password`; with no stored hash, spend the same time and fail.
        `caller`: who asks (a client address), for the per-caller bound."""
        await self._wait_for_thread(caller, caller_gone)
        if stored_hash is None:
            await self._run(self._hasher.verify, password, self._dummy_hash, waited=True)
            return PasswordCheck(valid=False, new_hash=None)
        valid, new_hash = await self._run(
            self._hasher.verify_and_update, password, stored_hash, waited=True
        )
        return PasswordCheck(valid=valid, new_hash=new_hash if valid else None)

    def refuse_if_full(self, caller: str | None) -> None:
        """`PasswordCheckQueueFullError` if a check of `caller`'s would find every thread
        busy and no room to wait."""
        if not self._threads.locked():
            return
        if self.waiting >= self._queue or (
            caller is not None and self._waiting_by_caller[caller] >= self._queue_per_caller
        ):
            raise PasswordCheckQueueFullError(self._retry_after())

    async def _wait_for_thread(self, caller: str | None, caller_gone: CallerGone | None) -> None:
        """Take a thread, waiting for one within the bounds; the thread is the caller's
        until `_run` hands the hash to it."""
        if not self._threads.locked():
            await self._threads.acquire()
            return
        self.refuse_if_full(caller)
        self.waiting += 1
        if caller is not None:
            self._waiting_by_caller[caller] += 1
        try:
            await self._acquire_unless_gone(caller_gone)
        finally:
            self.waiting -= 1
            if caller is not None:
                self._waiting_by_caller[caller] -= 1
                if not self._waiting_by_caller[caller]:
                    del self._waiting_by_caller[caller]

    async def _acquire_unless_gone(self, caller_gone: CallerGone | None) -> None:
        if caller_gone is None:
            await self._threads.acquire()
            return
        acquiring = asyncio.ensure_future(self._threads.acquire())
        gone = asyncio.ensure_future(caller_gone())
        gone.add_done_callback(_forget_outcome)
        try:
            await asyncio.wait((acquiring, gone), return_when=asyncio.FIRST_COMPLETED)
        except BaseException:  # cancelled: a thread taken meanwhile goes back
            gone.cancel()
            acquiring.add_done_callback(self._give_back_if_taken)
            acquiring.cancel()
            raise
        gone.cancel()
        if not acquiring.done():
            acquiring.add_done_callback(self._give_back_if_taken)
            acquiring.cancel()
            raise CallerGoneError("the caller disconnected")
        # Taken (perhaps just as the caller left: the check runs, and nobody reads it).

    def _give_back_if_taken(self, acquiring: asyncio.Future[Any]) -> None:
        if not acquiring.cancelled() and acquiring.exception() is None:
            self._threads.release()

    async def _run(self, work: Callable[..., T], *args: str, waited: bool = False) -> T:
        """Run `work` in a thread; `waited`: the thread was taken already."""
        if not waited:
            await self._threads.acquire()
        loop = asyncio.get_running_loop()
        self.running += 1
        started = time.monotonic()

        def done(_: Future[T]) -> None:
            loop.call_soon_threadsafe(self._hash_ended, time.monotonic() - started)

        try:
            future: Future[T] = self._pool.submit(work, *args)
        except BaseException:
            self._hash_ended(None)
            raise
        # The thread is given back when the hash ends, not when its caller stops waiting
        # for it: a cancelled request cannot make room for more hashes than threads.
        future.add_done_callback(done)
        return await asyncio.wrap_future(future)

    def _hash_ended(self, seconds: float | None) -> None:
        self.running -= 1
        self._threads.release()
        if seconds is not None:
            self._seconds_per_hash = 0.8 * self._seconds_per_hash + 0.2 * seconds

    def _retry_after(self) -> int:
        """Seconds until the checks waiting now have had their turn."""
        return max(1, math.ceil(self.waiting * self._seconds_per_hash / self._thread_count))


def _forget_outcome(task: asyncio.Future[Any]) -> None:
    """Retrieve the outcome of a watch nobody awaits (no "never retrieved" warning)."""
    if not task.cancelled():
        task.exception()
