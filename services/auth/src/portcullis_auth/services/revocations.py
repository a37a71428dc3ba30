"""Revoking tokens, grants, users' and clients' tokens: marked in Postgres and recorded.

Every revocation marks the rows it ends and adds a revocation row; the unit
of work commits, then publishes `recorded` to the revocation list.
"""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from portcullis_auth import events
from portcullis_auth.db.models import AccessToken, Revocation, utcnow
from portcullis_auth.repositories.tokens import TokenRepository
from portcullis_auth.revocation.recorder import RevocationRecorder
from portcullis_auth.settings import TokenSettings


class RevocationService:
    def __init__(self, session: AsyncSession, settings: TokenSettings) -> None:
        self._tokens = TokenRepository(session)
        self._settings = settings
        self._recorder = RevocationRecorder(session, max_token_ttl=settings.max_token_ttl)

    @property
    def recorded(self) -> list[Revocation]:
        """What this unit of work revoked; publish it once committed."""
        return self._recorder.recorded

    async def revoke_access_token(self, record: AccessToken, reason: str) -> None:
        await self._tokens.revoke_access_token(record.jti, utcnow())
        await self._recorder.token(
            record.jti, record.expires_at + timedelta(seconds=self._settings.leeway)
        )
        events.emit(
            "token_revoked",
            reason=reason,
            jti=record.jti,
            sid=record.sid,
            client=record.client_id,
            user=record.user_id,
        )

    async def revoke_grant(
        self,
        grant_id: uuid.UUID,
        *,
        reason: str,
        client_id: str | None = None,
        user_id: uuid.UUID | None = None,
    ) -> None:
        """A whole family (or personal access token): every token it produced. The
        client and user only name it in the audit line."""
        now = utcnow()
        await self._tokens.revoke_grant(grant_id, now)
        await self._revoke_sid(grant_id)
        events.emit(
            "grant_revoked",
            logging.WARNING if reason == "refresh_token_reuse" else logging.INFO,
            reason=reason,
            sid=grant_id,
            client=client_id,
            user=user_id,
        )

    async def revoke_sid(self, sid: uuid.UUID, reason: str) -> None:
        """A `sid` with no grant row behind it (a client-credentials token is its own sid)."""
        await self._revoke_sid(sid)
        events.emit("grant_revoked", reason=reason, sid=sid)

    async def _revoke_sid(self, sid: uuid.UUID) -> None:
        latest = await self._tokens.latest_token_expiry(sid)
        covers_until = max(latest or utcnow(), utcnow()) + timedelta(seconds=self._settings.leeway)
        await self._recorder.grant(sid, covers_until)

    async def revoke_user(self, user_id: uuid.UUID, reason: str) -> None:
        await self._tokens.revoke_all_of(now=utcnow(), user_id=user_id)
        await self._recorder.user(user_id)
        events.emit("user_tokens_revoked", logging.WARNING, reason=reason, user=user_id)

    async def revoke_client(self, client_id: str, reason: str) -> None:
        await self._tokens.revoke_all_of(now=utcnow(), client_id=client_id)
        await self._recorder.client(client_id)
        events.emit("client_tokens_revoked", logging.WARNING, reason=reason, client=client_id)
