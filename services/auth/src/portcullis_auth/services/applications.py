"""Authorized applications (Passport's `/oauth/tokens`): what a user let in, and
taking it back.

One entry a client: the scopes of all its live grants, when it was first let
in and when it last got a token. Revoking an application ends every grant the
user gave it (each refresh family, and so every token of each) and forgets the
consent, so it must ask again.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from portcullis_auth.db.models import utcnow
from portcullis_auth.repositories.applications import ApplicationRepository
from portcullis_auth.services.authorization import AuthorizationService
from portcullis_auth.services.revocations import RevocationService


@dataclass(frozen=True, slots=True)
class AuthorizedApplication:
    client_id: str
    name: str
    scopes: list[str]
    granted_at: datetime
    last_used_at: datetime | None


class ApplicationService:
    def __init__(self, session: AsyncSession, revocations: RevocationService) -> None:
        self._applications = ApplicationRepository(session)
        self._authorizations = AuthorizationService(session, revocations)
        self._revocations = revocations

    async def list(self, user_id: uuid.UUID) -> list[AuthorizedApplication]:
        by_client: dict[str, AuthorizedApplication] = {}
        for grant, client, used in await self._applications.live_grants(user_id, utcnow()):
            seen = by_client.get(client.id)
            if seen is None:
                by_client[client.id] = AuthorizedApplication(
                    client.id, client.name, sorted(grant.scopes), grant.created_at, used
                )
                continue
            by_client[client.id] = AuthorizedApplication(
                client.id,
                client.name,
                sorted(set(seen.scopes) | set(grant.scopes)),
                seen.granted_at,
                max((t for t in (seen.last_used_at, used) if t is not None), default=None),
            )
        return list(by_client.values())

    async def revoke(self, user_id: uuid.UUID, client_id: str) -> bool:
        """End every grant the user gave the client; False when there was none."""
        grants = await self._applications.live_grants(user_id, utcnow(), client_id)
        for grant, _, _ in grants:
            await self._revocations.revoke_grant(
                grant.id, reason="application_revoked", client_id=client_id, user_id=user_id
            )
        await self._authorizations.forget_consent(user_id, client_id)
        return bool(grants)
