"""Authorization codes and consents: what the authorization endpoint hands out and
what the token endpoint redeems (the protocol core's code store)."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from portcullis_auth.db.models import AuthorizationCode, utcnow
from portcullis_auth.records import AuthorizationCode as CodeRecord
from portcullis_auth.repositories.authorization import AuthorizationRepository
from portcullis_auth.security.secrets import generate_secret, hash_secret
from portcullis_auth.services.revocations import RevocationService

CODE_TTL = 60
"""Seconds a code lives: it is redeemed at once or not at all (RFC 6749 §4.1.2)."""


class AuthorizationService:
    def __init__(self, session: AsyncSession, revocations: RevocationService) -> None:
        self._repository = AuthorizationRepository(session)
        self._revocations = revocations

    async def issue_code(
        self,
        *,
        client_id: str,
        user_id: uuid.UUID,
        redirect_uri: str,
        scopes: frozenset[str],
        audience: str,
        code_challenge: str,
    ) -> str:
        """A new code, shown once: only its hash is kept."""
        code = generate_secret()
        now = utcnow()
        await self._repository.add_code(
            AuthorizationCode(
                id=uuid.uuid4(),
                code_hash=hash_secret(code),
                client_id=client_id,
                user_id=user_id,
                redirect_uri=redirect_uri,
                scopes=sorted(scopes),
                audience=audience,
                code_challenge=code_challenge,
                created_at=now,
                expires_at=now + timedelta(seconds=CODE_TTL),
                used_at=None,
                grant_id=None,
            )
        )
        return code

    async def find_code(self, code: str) -> CodeRecord | None:
        return await self._repository.find_code(hash_secret(code))

    async def redeem_code(self, code_id: uuid.UUID) -> bool:
        return await self._repository.mark_code_used(code_id, utcnow())

    async def link_family(self, code_id: uuid.UUID, family_id: uuid.UUID) -> None:
        await self._repository.set_code_grant(code_id, family_id)

    async def revoke_redeemed(self, code_id: uuid.UUID) -> None:
        family_id = await self._repository.code_grant(code_id)
        if family_id is not None:
            await self._revocations.revoke_grant(family_id, reason="authorization_code_reuse")

    async def has_consent(self, user_id: uuid.UUID, client_id: str, scopes: frozenset[str]) -> bool:
        """The user allowed the client these scopes (or more) before."""
        consent = await self._repository.consent(user_id, client_id)
        return consent is not None and scopes <= frozenset(consent.scopes)

    async def remember_consent(
        self, user_id: uuid.UUID, client_id: str, scopes: frozenset[str]
    ) -> None:
        """The user allowed the client these scopes, besides any allowed before."""
        await self._repository.add_consent_scopes(user_id, client_id, scopes, utcnow())

    async def forget_consent(self, user_id: uuid.UUID, client_id: str) -> None:
        await self._repository.forget_consent(user_id, client_id)
