"""Authorization codes and the consents users gave."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, cast

from sqlalchemy import delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from portcullis_auth.db.models import AuthorizationCode, Consent, User
from portcullis_auth.records import AuthorizationCode as CodeRecord
from portcullis_auth.repositories.users import user_record


class AuthorizationRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add_code(self, code: AuthorizationCode) -> None:
        self._session.add(code)
        await self._session.flush()

    async def find_code(self, code_hash: str) -> CodeRecord | None:
        row = (
            await self._session.execute(
                select(AuthorizationCode, User)
                .join(User, User.id == AuthorizationCode.user_id)
                .where(AuthorizationCode.code_hash == code_hash)
            )
        ).one_or_none()
        if row is None:
            return None
        code, user = row
        return CodeRecord(
            id=code.id,
            client_id=code.client_id,
            user=user_record(user),
            redirect_uri=code.redirect_uri,
            scopes=tuple(code.scopes),
            audience=code.audience,
            code_challenge=code.code_challenge,
            expires_at=code.expires_at,
            used_at=code.used_at,
        )

    async def mark_code_used(self, code_id: uuid.UUID, now: datetime) -> bool:
        """Only an unused code is marked: of two uses at once, one wins."""
        result = await self._session.execute(
            update(AuthorizationCode)
            .where(AuthorizationCode.id == code_id, AuthorizationCode.used_at.is_(None))
            .values(used_at=now)
        )
        return bool(cast("Any", result).rowcount == 1)

    async def set_code_grant(self, code_id: uuid.UUID, grant_id: uuid.UUID) -> None:
        await self._session.execute(
            update(AuthorizationCode)
            .where(AuthorizationCode.id == code_id)
            .values(grant_id=grant_id)
        )

    async def code_grant(self, code_id: uuid.UUID) -> uuid.UUID | None:
        result = await self._session.execute(
            select(AuthorizationCode.grant_id).where(AuthorizationCode.id == code_id)
        )
        return result.scalar_one_or_none()

    async def consent(self, user_id: uuid.UUID, client_id: str) -> Consent | None:
        return await self._session.get(Consent, (user_id, client_id))

    async def add_consent_scopes(
        self, user_id: uuid.UUID, client_id: str, scopes: frozenset[str], now: datetime
    ) -> None:
        """Add `scopes` to the user's consent for the client, making it if there is none.

        Safe under concurrent approvals: the row is made with `ON CONFLICT DO NOTHING`
        (two first approvals cannot both insert), then locked and merged, so no
        approval's scopes are lost to another's write."""
        dialect = self._session.get_bind().dialect.name
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        await self._session.execute(
            insert(Consent)
            .values(user_id=user_id, client_id=client_id, scopes=[], created_at=now, updated_at=now)
            .on_conflict_do_nothing()
        )
        consent = (
            await self._session.execute(
                select(Consent)
                .where(Consent.user_id == user_id, Consent.client_id == client_id)
                .with_for_update()
                .execution_options(populate_existing=True)
            )
        ).scalar_one()
        consent.scopes = sorted(scopes | frozenset(consent.scopes))
        consent.updated_at = now
        await self._session.flush()

    async def forget_consent(self, user_id: uuid.UUID, client_id: str) -> None:
        consent = await self.consent(user_id, client_id)
        if consent is not None:
            await self._session.delete(consent)
            await self._session.flush()

    async def remove_unused_codes_of(self, user_id: uuid.UUID) -> None:
        """Every code issued for the user and not redeemed yet."""
        await self._session.execute(
            delete(AuthorizationCode).where(
                AuthorizationCode.user_id == user_id, AuthorizationCode.used_at.is_(None)
            )
        )
