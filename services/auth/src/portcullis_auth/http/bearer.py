"""Bearer tokens presented to the auth service itself (logout, personal access tokens).

The shared verifier checks the token against our own keys; then the token's
record must exist and be unrevoked, and its client and user still active.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from litestar import Request
from sqlalchemy.ext.asyncio import AsyncSession

from portcullis_auth.db.models import AccessToken, Grant, OAuthClient, User
from portcullis_auth.repositories.clients import ClientRepository
from portcullis_auth.repositories.revocations import RevocationRepository
from portcullis_auth.repositories.tokens import TokenRepository
from portcullis_auth.repositories.users import UserRepository
from portcullis_auth.runtime import AuthRuntime
from portcullis_shared.claims import AccessTokenClaims
from portcullis_shared.errors import InsufficientScopeError, InvalidTokenError
from portcullis_shared.plugin import bearer_token

USER_LOGIN_GRANTS = frozenset({"password", "authorization_code"})


@dataclass(frozen=True, slots=True)
class BearerContext:
    claims: AccessTokenClaims
    record: AccessToken
    client: OAuthClient
    user: User | None
    grant: Grant | None

    def require_first_party_user_token(self) -> User:
        """A user's token from a first-party login: never a PAT, never client credentials."""
        if (
            self.user is None
            or not self.client.first_party
            or self.client.personal_access
            or self.grant is None
            or self.grant.grant_type not in USER_LOGIN_GRANTS
        ):
            raise InsufficientScopeError("this needs a user's token from a first-party login")
        return self.user


async def authenticate_bearer(
    request: Request[Any, Any, Any], runtime: AuthRuntime, session: AsyncSession
) -> BearerContext:
    claims = await runtime.own_token_verifier.verify(bearer_token(request))
    tokens = TokenRepository(session)
    record = await tokens.get_access_token(uuid.UUID(claims.jti))
    if record is None or record.revoked_at is not None:
        raise InvalidTokenError("token revoked")
    client = await ClientRepository(session).get(claims.client_id)
    if client is None or client.revoked_at is not None:
        raise InvalidTokenError("token revoked")
    user = None
    if record.user_id is not None:
        user = await UserRepository(session).get(record.user_id)
        if user is None or user.disabled_at is not None:
            raise InvalidTokenError("token revoked")
    grant = await tokens.get_grant(record.sid)
    if grant is not None and grant.revoked_at is not None:
        raise InvalidTokenError("token revoked")
    # As the resource services do: a user or client cutoff covers every token issued
    # at or before it, even one whose row was written in the same instant.
    revocations = RevocationRepository(session)
    for kind, subject in (("user", str(record.user_id)), ("client", record.client_id)):
        if kind == "user" and record.user_id is None:
            continue
        cutoff = await revocations.latest_cutoff(kind, subject)
        if cutoff is not None and claims.iat <= cutoff:
            raise InvalidTokenError("token revoked")
    return BearerContext(claims, record, client, user, grant)
