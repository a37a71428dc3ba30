"""Personal access tokens: long-lived tokens a user mints for scripts (Passport's `createToken`)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from portcullis_auth import events
from portcullis_auth.db.models import Grant, OAuthClient, utcnow
from portcullis_auth.records import IssuedAccessToken, User
from portcullis_auth.repositories.clients import ClientRepository, client_record
from portcullis_auth.repositories.tokens import TokenRepository
from portcullis_auth.services.revocations import RevocationService
from portcullis_auth.services.tokens import TokenService

GRANT_TYPE = "personal_access"


class NoPersonalAccessClientError(Exception):
    """`portcullis install` has not created the personal access client."""


class PersonalAccessTokenRequestError(ValueError):
    """A request for a personal access token that cannot be granted; `error` is the
    OAuth 2.0 error code that says what is wrong."""

    def __init__(self, description: str, *, error: str = "invalid_request") -> None:
        super().__init__(description)
        self.error = error


@dataclass(frozen=True, slots=True)
class CreatedPersonalAccessToken:
    grant: Grant
    access_token: IssuedAccessToken


class PersonalAccessTokenService:
    def __init__(
        self, session: AsyncSession, tokens: TokenService, revocations: RevocationService
    ) -> None:
        self._grants = TokenRepository(session)
        self._clients = ClientRepository(session)
        self._tokens = tokens
        self._revocations = revocations

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
        audience: str,
        expires_in: int,
        max_ttl: int,
    ) -> CreatedPersonalAccessToken:
        """A token of the caller's own audience and at most its scopes: a personal access
        token never reaches further than the token that asked for it."""
        requested = frozenset(scopes)
        if not name.strip():
            raise PersonalAccessTokenRequestError("a personal access token needs a name")
        if not 60 <= expires_in <= max_ttl:
            raise PersonalAccessTokenRequestError(
                f"expires_in must be between 60 and {max_ttl} seconds"
            )
        beyond = requested - caller_scopes
        if beyond:
            raise PersonalAccessTokenRequestError(
                # Counted, not echoed: an unknown value may be a secret in the wrong field.
                f"{len(beyond)} requested scope(s) beyond the caller's token",
                error="invalid_scope",
            )
        client = await self.personal_access_client()
        not_for_pats = requested - frozenset(client.scopes)
        if not_for_pats:
            raise PersonalAccessTokenRequestError(
                f"{len(not_for_pats)} requested scope(s) not allowed for personal access tokens",
                error="invalid_scope",
            )
        if audience not in client.audiences:
            raise PersonalAccessTokenRequestError(
                f"personal access tokens are not issued for {audience}", error="invalid_target"
            )
        now = utcnow()
        grant = await self._grants.add_grant(
            Grant(
                id=uuid.uuid4(),
                client_id=client.id,
                user_id=user.id,
                grant_type=GRANT_TYPE,
                scopes=sorted(requested),
                audience=audience,
                name=name.strip(),
                created_at=now,
                expires_at=now + timedelta(seconds=expires_in),
                revoked_at=None,
            )
        )
        access = await self._tokens.issue_access_token(
            client=client_record(client),
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

    async def revoke(self, user: User, token_id: uuid.UUID) -> bool:
        """Revoke one of the user's personal access tokens; False when it has none by
        that id (another user's is as good as none)."""
        grant = await self.find(user, token_id)
        if grant is None:
            return False
        await self._revocations.revoke_grant(
            grant.id,
            reason="personal_access_token_deleted",
            client_id=grant.client_id,
            user_id=user.id,
        )
        return True

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
