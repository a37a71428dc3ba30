"""Password checks: argon2 off the event loop, a bounded queue, dropped when the caller goes."""

from __future__ import annotations

import asyncio
import os
import sys
import threading
from collections.abc import Callable

import pytest
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

from portcullis_auth.security.passwords import (
    CallerGoneError,
    PasswordCheckQueueFullError,
    PasswordHasher,
)


class CountingArgon2(Argon2Hasher):
    """Real argon2 that counts its verifies, and can hold one until released."""

    def __init__(self) -> None:
        super().__init__()
        self.verified = 0
        self.started = threading.Event()
        """Set once a verify runs in its thread."""
        self.hold = threading.Event()
        self.hold.set()

    def verify(self, password: str | bytes, hash: str | bytes) -> bool:  # noqa: A002
        self.started.set()
        self.hold.wait(timeout=10)
        self.verified += 1
        return super().verify(password, hash)


@pytest.fixture
def argon2() -> CountingArgon2:
    return CountingArgon2()


def hasher_of(argon2: CountingArgon2, *, queue: int, per_caller: int = 8) -> PasswordHasher:
    return PasswordHasher(
        PasswordHash((argon2,)), threads=1, queue=queue, queue_per_caller=per_caller
    )


async def until(condition: Callable[[], bool]) -> None:
    """Let the event loop run (no fixed sleep) until `condition()` holds."""
    for _ in range(100_000):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("the condition never held")


async def test_a_right_and_a_wrong_password(argon2: CountingArgon2) -> None:
    hasher = hasher_of(argon2, queue=4)
    stored = hasher.hash("correct horse")
    assert (await hasher.verify("correct horse", stored)).valid
    assert not (await hasher.verify("wrong", stored)).valid
    assert not (await hasher.verify("anything", None)).valid  # unknown user: same work
    assert argon2.verified == 3


async def test_checks_past_the_queue_bound_are_refused_at_once(argon2: CountingArgon2) -> None:
    hasher = hasher_of(argon2, queue=2)
    stored = hasher.hash("pw")
    argon2.hold.clear()
    running = asyncio.create_task(hasher.verify("pw", stored))
    await until(lambda: hasher.waiting == 0 and hasher.running == 1)
    queued = [asyncio.create_task(hasher.verify("pw", stored)) for _ in range(2)]
    await until(lambda: hasher.waiting == 2)

    with pytest.raises(PasswordCheckQueueFullError):
        await hasher.verify("pw", stored)

    argon2.hold.set()
    assert all(check.valid for check in await asyncio.gather(running, *queued))
    assert argon2.verified == 3


async def test_a_check_whose_caller_has_gone_is_dropped_before_it_runs(
    argon2: CountingArgon2,
) -> None:
    hasher = hasher_of(argon2, queue=8)
    stored = hasher.hash("pw")
    argon2.hold.clear()
    running = asyncio.create_task(hasher.verify("pw", stored))
    await until(lambda: hasher.running == 1)
    gone = asyncio.Event()
    abandoned = asyncio.create_task(hasher.verify("pw", stored, caller_gone=gone.wait))
    await until(lambda: hasher.waiting == 1)

    gone.set()
    with pytest.raises(CallerGoneError):
        await abandoned
    assert hasher.waiting == 0
    argon2.hold.set()
    assert (await running).valid
    assert (await hasher.verify("pw", stored, caller_gone=asyncio.Event().wait)).valid
    assert argon2.verified == 2, "the abandoned check ran"


async def test_a_cancelled_check_gives_its_thread_back_only_when_the_hash_ends(
    argon2: CountingArgon2,
) -> None:
    hasher = hasher_of(argon2, queue=8)
    stored = hasher.hash("pw")
    argon2.hold.clear()
    running = asyncio.create_task(hasher.verify("pw", stored))
    await until(argon2.started.is_set)  # in its thread: past cancelling
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    # The hash still runs in its thread: the next check waits for it, not beside it.
    assert hasher.running == 1
    follower = asyncio.create_task(hasher.verify("pw", stored))
    await until(lambda: hasher.waiting == 1)
    argon2.hold.set()
    assert (await follower).valid
    assert argon2.verified == 2


async def test_one_caller_may_hold_only_its_share_of_the_queue(argon2: CountingArgon2) -> None:
    hasher = hasher_of(argon2, queue=8, per_caller=2)
    stored = hasher.hash("pw")
    argon2.hold.clear()
    running = asyncio.create_task(hasher.verify("pw", stored, caller="203.0.113.7"))
    await until(lambda: hasher.running == 1)
    mine = [
        asyncio.create_task(hasher.verify("pw", stored, caller="203.0.113.7")) for _ in range(2)
    ]
    await until(lambda: hasher.waiting == 2)

    with pytest.raises(PasswordCheckQueueFullError) as refused:
        await hasher.verify("pw", stored, caller="203.0.113.7")
    assert refused.value.retry_after >= 1
    other = asyncio.create_task(hasher.verify("pw", stored, caller="198.51.100.1"))
    await until(lambda: hasher.waiting == 3)  # another caller still finds room

    argon2.hold.set()
    assert all(check.valid for check in await asyncio.gather(running, *mine, other))


async def test_a_check_cancelled_while_it_waits_takes_no_thread_with_it(
    argon2: CountingArgon2,
) -> None:
    hasher = hasher_of(argon2, queue=8)
    stored = hasher.hash("pw")
    argon2.hold.clear()
    running = asyncio.create_task(hasher.verify("pw", stored))
    await until(lambda: hasher.running == 1)
    waiting = asyncio.create_task(hasher.verify("pw", stored, caller_gone=asyncio.Event().wait))
    await until(lambda: hasher.waiting == 1)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert hasher.waiting == 0
    argon2.hold.set()
    await running
    # Both threads' worth of work is done: the next check runs at once.
    assert (await asyncio.wait_for(hasher.verify("pw", stored), timeout=5)).valid
    assert hasher.running == 0


class PriorityRecordingArgon2(Argon2Hasher):
    """Records the CPU priority (nice) of the thread each verify runs on."""

    def __init__(self) -> None:
        super().__init__()
        self.priorities: list[int] = []

    def verify(self, password: str | bytes, hash: str | bytes) -> bool:  # noqa: A002
        self.priorities.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
        return super().verify(password, hash)


@pytest.mark.skipif(sys.platform != "linux", reason="a thread has a nice value of its own on Linux")
async def test_passwords_are_hashed_at_the_lowest_cpu_priority() -> None:
    """On a core it shares with the event loop, argon2 must take only what token
    requests leave: a flood of logins slows logins, not everything."""
    argon2 = PriorityRecordingArgon2()
    hasher = PasswordHasher(PasswordHash((argon2,)), threads=1)
    try:
        digest = hasher.hash("correct horse")  # on this thread
        assert (await hasher.verify("correct horse", digest)).valid
    finally:
        hasher.close()
    assert argon2.priorities == [19]
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) < 19  # the loop's own
