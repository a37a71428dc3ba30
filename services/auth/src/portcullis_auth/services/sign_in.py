"""Signing in to the auth service's own pages: a session a browser holds by a cookie.

The cookie is 256 random bits; only its hash is stored. Each sign-in starts a
new session (a cookie set before signing in is never promoted), and signing
out ends it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from portcullis_auth.db.models import SignInSession, utcnow
from portcullis_auth.records import User
from portcullis_auth.repositories.sign_in import SignInRepository
from portcullis_auth.repositories.users import user_record
from portcullis_auth.security.secrets import generate_secret, hash_secret

SESSION_TTL = 8 * 3600
"""Seconds a sign-in lasts."""


@dataclass(frozen=True, slots=True)
class SignedIn:
    session_id: uuid.UUID
    user: User
    email: str


class SignInService:
    def __init__(self, session: AsyncSession) -> None:
        self._sessions = SignInRepository(session)

    async def start(self, user_id: uuid.UUID, replacing: str | None = None) -> str:
        """A new session for the user: its cookie value. `replacing`: the cookie the
        browser held, whose session ends."""
        if replacing is not None:
            await self._sessions.remove(hash_secret(replacing))
        cookie = generate_secret()
        now = utcnow()
        await self._sessions.add(
            SignInSession(
                id=uuid.uuid4(),
                token_hash=hash_secret(cookie),
                user_id=user_id,
                created_at=now,
                expires_at=now + timedelta(seconds=SESSION_TTL),
            )
        )
        return cookie

    async def find(self, cookie: str) -> SignedIn | None:
        """Who holds this cookie, if its session is live and its user active."""
        found = await self._sessions.find(hash_secret(cookie), utcnow())
        if found is None:
            return None
        session, user = found
        if user.disabled_at is not None:
            return None
        return SignedIn(session.id, user_record(user), user.email)

    async def end(self, cookie: str) -> None:
        await self._sessions.remove(hash_secret(cookie))
