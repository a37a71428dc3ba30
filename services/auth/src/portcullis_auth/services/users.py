"""Users: creation and password authentication."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from portcullis_auth.db.models import User, utcnow
from portcullis_auth.repositories.users import UserRepository
from portcullis_auth.security.passwords import CallerGone, PasswordHasher


class UserExistsError(ValueError):
    """A user with that email already exists."""


def normalise_username(username: str) -> str:
    """Emails compare case-insensitively, without surrounding space."""
    return username.strip().lower()


class UserService:
    def __init__(self, session: AsyncSession, hasher: PasswordHasher) -> None:
        self._session = session
        self._users = UserRepository(session)
        self._hasher = hasher

    async def create(self, email: str, password: str, *, is_admin: bool = False) -> User:
        email = normalise_username(email)
        if "@" not in email or len(email) > 320:
            raise ValueError("a user needs a valid email address")
        if len(password) < 8:
            raise ValueError("a password needs at least 8 characters")
        if await self._users.get_by_email(email) is not None:
            raise UserExistsError(f"a user with email {email} already exists")
        return await self._users.add(
            User(
                id=uuid.uuid4(),
                email=email,
                password_hash=await self._hasher.hash_async(password),
                is_admin=is_admin,
                created_at=utcnow(),
                disabled_at=None,
            )
        )

    async def get(self, user_id: uuid.UUID) -> User | None:
        return await self._users.get(user_id)

    async def authenticate(
        self, username: str, password: str, *, caller_gone: CallerGone | None = None
    ) -> User | None:
        """The active user with this password, or None.

        Unknown, disabled and wrong-password users all cost one argon2 verify. No
        pooled connection is held while the verify waits its turn (logins queue for
        the hashing thread, a quarter of a second each): the user is read in a short
        session of its own, and the user returned is detached from it. A check that
        waits while `caller_gone` completes is dropped (`CallerGoneError`).
        """
        async with AsyncSession(self._session.bind) as reads:
            user = await UserRepository(reads).get_by_email(normalise_username(username))
        active = user if user is not None and user.disabled_at is None else None
        check = await self._hasher.verify(
            password, None if active is None else active.password_hash, caller_gone=caller_gone
        )
        if active is None or not check.valid:
            return None
        if check.new_hash is not None:
            await self._users.set_password_hash(active, check.new_hash)
        return active
