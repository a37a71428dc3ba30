"""User passwords: argon2 through pwdlib, with equal work for unknown users."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher


@dataclass(frozen=True, slots=True)
class PasswordCheck:
    valid: bool
    new_hash: str | None
    """A rehash under the current parameters, when the stored one is outdated."""


class PasswordHasher:
    def __init__(self, hasher: PasswordHash | None = None, *, threads: int = 1) -> None:
        """`threads`: hashes run at once, off the event loop. Argon2 holds its memory for
        the whole hash, so the pool bounds memory under a burst of logins; one thread
        also keeps concurrent hashes from slowing each other on a busy core."""
        self._hasher = hasher or PasswordHash((Argon2Hasher(),))
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="argon2")
        # Verified when the user is unknown, so both answers cost one argon2 verify.
        self._dummy_hash = self._hasher.hash("portcullis-dummy-password")

    def close(self) -> None:
        self._pool.shutdown(wait=False)

    def hash(self, password: str) -> str:
        return self._hasher.hash(password)

    async def hash_async(self, password: str) -> str:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self._hasher.hash, password)

    async def verify(self, password: str, stored_hash: str | None) -> PasswordCheck:
        """Check `password`; with no stored hash, spend the same time and fail."""
        loop = asyncio.get_running_loop()
        if stored_hash is None:
            await loop.run_in_executor(self._pool, self._hasher.verify, password, self._dummy_hash)
            return PasswordCheck(valid=False, new_hash=None)
        valid, new_hash = await loop.run_in_executor(
            self._pool, self._hasher.verify_and_update, password, stored_hash
        )
        return PasswordCheck(valid=valid, new_hash=new_hash if valid else None)
