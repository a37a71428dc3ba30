"""The applications a user has let in: their live grants, client by client."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from portcullis_auth.db.models import AccessToken, Grant, OAuthClient

PERSONAL_ACCESS = "personal_access"


class ApplicationRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def live_grants(
        self, user_id: uuid.UUID, now: datetime, client_id: str | None = None
    ) -> list[tuple[Grant, OAuthClient, datetime | None]]:
        """The user's live grants but personal access tokens, each with its client and
        when a token of it was last issued, oldest first."""
        last_used = (
            select(func.max(AccessToken.created_at))
            .where(AccessToken.sid == Grant.id)
            .correlate(Grant)
            .scalar_subquery()
        )
        query = (
            select(Grant, OAuthClient, last_used)
            .join(OAuthClient, OAuthClient.id == Grant.client_id)
            .where(
                Grant.user_id == user_id,
                Grant.grant_type != PERSONAL_ACCESS,
                Grant.revoked_at.is_(None),
                Grant.expires_at > now,
            )
            .order_by(Grant.created_at)
        )
        if client_id is not None:
            query = query.where(Grant.client_id == client_id)
        rows = await self._session.execute(query)
        return [(grant, client, used) for grant, client, used in rows.all()]
