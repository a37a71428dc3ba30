"""Personal access tokens: long-lived tokens a user mints for scripts (Passport's `createToken`)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from portcullis_auth import events
from portcullis_auth.db.models import Grant, OAuthClient, User, utcnow
from portcullis_auth.oauth2.errors import InvalidRequestError, InvalidScopeError
from portcullis_auth.repositories.clients import ClientRepository
from portcullis_auth.repositories.tokens import TokenRepository
from portcullis_auth.services.tokens import IssuedAccessToken, TokenService
from portcullis_shared.scopes import format_scope

GRANT_TYPE = "personal_access"


class NoPersonalAccessClientError(Exception):
    """`portcullis install` has not created the personal access client."""


@dataclass(frozen=True, slots=True)
class CreatedPersonalAccessToken:
    grant: Grant
    access_token: IssuedAccessToken


class PersonalAccessTokenService:
    def __init__(self, session: AsyncSession, tokens: TokenService) -> None:
        self._grants = TokenRepository(session)
        self._clients = ClientRepository(session)
        self._tokens = tokens

    async def personal_access_client(self) -> OAuthClient:
        client = await self._clients.personal_access_client()
        if client is None:
            raise NoPersonalAccessClientError(
                "run `portcullis install` to create the personal access client"
            )
        return client

    async def create(
        self,
        user: User,
        *,
        name: str,
        scopes: Iterable[str],
        caller_scopes: frozenset[str],
        expires_in: int,
        max_ttl: int,
    ) -> CreatedPersonalAccessToken:
        requested = frozenset(scopes)
        if not name.strip():
            raise InvalidRequestError("a personal access token needs a name")
        if not 60 <= expires_in <= max_ttl:
            raise InvalidRequestError(f"expires_in must be between 60 and {max_ttl} seconds")
        beyond = requested - caller_scopes
        if beyond:
            raise InvalidScopeError(f"scopes beyond the caller's token: {format_scope(beyond)}")
        client = await self.personal_access_client()
        not_for_pats = requested - frozenset(client.scopes)
        if not_for_pats:
            raise InvalidScopeError(
                f"scopes not allowed for personal access tokens: {format_scope(not_for_pats)}"
            )
        now = utcnow()
        grant = await self._grants.add_grant(
            Grant(
                id=uuid.uuid4(),
                client_id=client.id,
                user_id=user.id,
                grant_type=GRANT_TYPE,
                scopes=sorted(requested),
                audience=client.audiences[0],
                name=name.strip(),
                created_at=now,
                expires_at=now + timedelta(seconds=expires_in),
                revoked_at=None,
            )
        )
        access = await self._tokens.issue_access_token(
            client=client,
            user=user,
            scopes=requested,
            audience=grant.audience,
            sid=grant.id,
            ttl=expires_in,
        )
        events.emit(
            "token_issued",
            grant_type=GRANT_TYPE,
            jti=access.jti,
            sid=grant.id,
            client=client.id,
            user=user.id,
        )
        return CreatedPersonalAccessToken(grant, access)

    async def list(self, user: User) -> list[Grant]:
        client = await self.personal_access_client()
        return await self._grants.personal_access_grants(user.id, client.id, utcnow())

    async def find(self, user: User, token_id: uuid.UUID) -> Grant | None:
        client = await self.personal_access_client()
        grant = await self._grants.get_grant(token_id)
        if (
            grant is None
            or grant.user_id != user.id
            or grant.client_id != client.id
            or grant.revoked_at
        ):
            return None
        return grant
