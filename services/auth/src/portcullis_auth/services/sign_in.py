"""Signing in to the auth service's own pages: a session a browser holds by a cookie.

The cookie is 256 random bits; only its hash is stored. Each sign-in starts a
new session (a cookie set before signing in is never promoted), and signing
out ends it. A change that lowers the user's trust deletes their sessions
(`UserService`); as a backstop, a session made at or before the user's newest
revocation cutoff is refused, as a token issued then is.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from portcullis_auth.db.models import SignInSession, utcnow
from portcullis_auth.records import User
from portcullis_auth.repositories.revocations import RevocationRepository
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
        self._revocations = RevocationRepository(session)

    async def start(
        self, user_id: uuid.UUID, replacing: str | None = None, since: datetime | None = None
    ) -> str:
        """A new session for the user: its cookie value. `replacing`: the cookie the
        browser held, whose session ends. `since`: when the user's password check began
        (default now), which the session is dated from: a trust change made while the
        check ran then covers it."""
        if replacing is not None:
            await self._sessions.remove(hash_secret(replacing))
        cookie = generate_secret()
        now = since or utcnow()
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
        """Who holds this cookie, if its session is live, its user active and no user
        cutoff covers it."""
        found = await self._sessions.find(hash_secret(cookie), utcnow())
        if found is None:
            return None
        session, user = found
        if user.disabled_at is not None:
            return None
        # Whole seconds, as for tokens: a session made in the cutoff's own second is
        # covered, even one made just after the change (signing in again a second later
        # works).
        cutoff = await self._revocations.latest_cutoff("user", str(user.id))
        if cutoff is not None and int(session.created_at.timestamp()) <= cutoff:
            return None
        return SignedIn(session.id, user_record(user), user.email)

    async def end(self, cookie: str) -> None:
        await self._sessions.remove(hash_secret(cookie))
