"""User passwords: argon2 through pwdlib, with equal work for unknown users."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

# Argon2 holds its memory for the whole hash: a small pool bounds how many run
# at once, so a burst of logins cannot exhaust memory, and keeps them off the
# event loop.
_ARGON2_POOL = ThreadPoolExecutor(max_workers=2, thread_name_prefix="argon2")


@dataclass(frozen=True, slots=True)
class PasswordCheck:
    valid: bool
    new_hash: str | None
    """A rehash under the current parameters, when the stored one is outdated."""


class PasswordHasher:
    def __init__(self, hasher: PasswordHash | None = None) -> None:
        self._hasher = hasher or PasswordHash((Argon2Hasher(),))
        # Verified when the user is unknown, so both answers cost one argon2 verify.
        self._dummy_hash = self._hasher.hash("portcullis-dummy-password")

    def hash(self, password: str) -> str:
        return self._hasher.hash(password)

    async def hash_async(self, password: str) -> str:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(_ARGON2_POOL, self._hasher.hash, password)

    async def verify(self, password: str, stored_hash: str | None) -> PasswordCheck:
        """Check `password`; with no stored hash, spend the same time and fail."""
        loop = asyncio.get_running_loop()
        if stored_hash is None:
            await loop.run_in_executor(
                _ARGON2_POOL, self._hasher.verify, password, self._dummy_hash
            )
            return PasswordCheck(valid=False, new_hash=None)
        valid, new_hash = await loop.run_in_executor(
            _ARGON2_POOL, self._hasher.verify_and_update, password, stored_hash
        )
        return PasswordCheck(valid=valid, new_hash=new_hash if valid else None)
