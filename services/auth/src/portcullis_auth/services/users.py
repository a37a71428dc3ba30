"""Users: creation, password logins, and the changes that lower their trust.

A change that lowers a user's trust (a new password, the admin role taken
away, disabled, every token revoked) revokes every token the user holds and ends
every sign-in to the auth service's pages, in the same unit of work: a browser
signed in before the change could otherwise still approve apps and get codes. What
a sign-in approved and no token carries yet (an unredeemed code, a device still
polling) is taken back too.
"""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from portcullis_auth import events
from portcullis_auth.db.models import User, utcnow
from portcullis_auth.records import User as UserRecord
from portcullis_auth.repositories.authorization import AuthorizationRepository
from portcullis_auth.repositories.devices import DeviceRepository
from portcullis_auth.repositories.sign_in import SignInRepository
from portcullis_auth.repositories.users import UserRepository, user_record
from portcullis_auth.security.passwords import CallerGone, CallerGoneError, PasswordHasher
from portcullis_auth.security.usernames import normalise_username
from portcullis_auth.services.revocations import RevocationService

MIN_PASSWORD_LENGTH = 8


class UserExistsError(ValueError):
    """A user with that email already exists."""


class NoSuchUserError(LookupError):
    """No user has that email."""


def check_password_rules(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValueError(f"a password needs at least {MIN_PASSWORD_LENGTH} characters")


class UserService:
    def __init__(self, session: AsyncSession, hasher: PasswordHasher) -> None:
        self._session = session
        self._users = UserRepository(session)
        self._hasher = hasher

    async def create(self, email: str, password: str, *, is_admin: bool = False) -> User:
        email = normalise_username(email)
        if "@" not in email or len(email) > 320:
            raise ValueError("a user needs a valid email address")
        check_password_rules(password)
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

    async def find(self, email: str) -> User:
        found = await self._users.get_by_email(normalise_username(email))
        if found is None:
            raise NoSuchUserError(f"no user {email}")
        return found

    def refuse_if_busy(self, client_ip: str) -> None:
        self._hasher.refuse_if_full(client_ip)

    async def authenticate(
        self,
        username: str,
        password: str,
        *,
        client_ip: str | None = None,
        caller_gone: CallerGone | None = None,
    ) -> UserRecord | None:
        """The active user with this password, or None.

        Unknown, disabled and wrong-password users all cost one argon2 verify. No
        pooled connection is held while the verify waits its turn (logins queue for
        the hashing thread, a quarter of a second each): the user is read in a short
        session of its own. A check that waits while `caller_gone` completes is
        dropped (`CallerGoneError`); `client_ip` bounds one address's waiting checks.
        """
        async with AsyncSession(self._session.bind) as reads:
            user = await UserRepository(reads).get_by_email(normalise_username(username))
        active = user if user is not None and user.disabled_at is None else None
        try:
            check = await self._hasher.verify(
                password,
                None if active is None else active.password_hash,
                caller=client_ip,
                caller_gone=caller_gone,
            )
        except CallerGoneError:
            events.emit("login_abandoned")
            raise
        if active is None or not check.valid:
            return None
        if check.new_hash is not None:
            await self._users.set_password_hash(active, check.new_hash)
        return user_record(active)

    async def set_password(self, email: str, password: str, revocations: RevocationService) -> None:
        """A new password; every token and sign-in of the user ends."""
        check_password_rules(password)
        user = await self.find(email)
        user.password_hash = await self._hasher.hash_async(password)
        await self._session.flush()
        await self._lower_trust(user, revocations, reason="password_changed")

    async def set_admin(self, email: str, admin: bool, revocations: RevocationService) -> None:
        """Grant or take away the admin role; taking it away ends the user's tokens and
        sign-ins."""
        user = await self.find(email)
        user.is_admin = admin
        await self._session.flush()
        if not admin:
            await self._lower_trust(user, revocations, reason="admin_removed")

    async def disable(self, email: str, revocations: RevocationService) -> None:
        """No more logins, and every token and sign-in of the user ended."""
        user = await self.find(email)
        user.disabled_at = user.disabled_at or utcnow()
        await self._session.flush()
        await self._lower_trust(user, revocations, reason="user_disabled")

    async def revoke_tokens(self, email: str, revocations: RevocationService) -> None:
        """Every token and sign-in of the user ended."""
        user = await self.find(email)
        await self._lower_trust(user, revocations, reason="operator")

    async def _lower_trust(self, user: User, revocations: RevocationService, reason: str) -> None:
        """Revoke the user's tokens, end their sign-ins, and take back what a sign-in gave
        and no token carries yet: unredeemed codes and approved devices still polling."""
        await revocations.revoke_user(user.id, reason=reason)
        await SignInRepository(self._session).remove_all_of(user.id)
        await AuthorizationRepository(self._session).remove_unused_codes_of(user.id)
        await DeviceRepository(self._session).deny_approved_of(user.id)
