"""Bearer tokens presented to the auth service's own routes (logout, personal access tokens).

The verifier has checked the signature, the issuer and the audience; here the
token's record must exist and be unrevoked, its client and user still active,
its grant unrevoked, and no user or client cutoff must cover it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from portcullis_auth.db.models import AccessToken, Grant
from portcullis_auth.records import Client, User
from portcullis_auth.repositories.clients import ClientRepository
from portcullis_auth.repositories.revocations import RevocationRepository
from portcullis_auth.repositories.tokens import TokenRepository
from portcullis_auth.repositories.users import UserRepository, user_record
from portcullis_auth.services.revocations import RevocationService
from portcullis_shared.claims import AccessTokenClaims

USER_LOGIN_GRANTS = frozenset({"password", "authorization_code"})


@dataclass(frozen=True, slots=True)
class AccountCaller:
    """Who a live bearer token speaks for, and what it came from."""

    claims: AccessTokenClaims
    record: AccessToken
    client: Client
    user: User | None
    grant: Grant | None
    """Its refresh family or personal access token; None for a client-credentials token."""

    def first_party_user(self) -> User | None:
        """The user, when this is a user's token from a first-party login: never a personal
        access token, never client credentials, never a third-party app's."""
        if (
            self.user is None
            or not self.client.first_party
            or self.client.personal_access
            or self.grant is None
            or self.grant.grant_type not in USER_LOGIN_GRANTS
        ):
            return None
        return self.user


class AccountTokenService:
    def __init__(self, session: AsyncSession) -> None:
        self._tokens = TokenRepository(session)
        self._clients = ClientRepository(session)
        self._users = UserRepository(session)
        self._revocations = RevocationRepository(session)

    async def caller(self, claims: AccessTokenClaims) -> AccountCaller | None:
        """The caller behind a verified token, or None when the token is not live."""
        record = await self._tokens.get_access_token(uuid.UUID(claims.jti))
        if record is None or record.revoked_at is not None:
            return None
        client = await self._clients.get_active_record(claims.client_id)
        if client is None:
            return None
        user = None
        if record.user_id is not None:
            row = await self._users.get(record.user_id)
            if row is None or row.disabled_at is not None:
                return None
            user = user_record(row)
        grant = await self._tokens.get_grant(record.sid)
        if grant is not None and grant.revoked_at is not None:
            return None
        # As the resource services do: a user or client cutoff covers every token issued
        # at or before it, even one whose row was written in the same instant.
        subjects = [("client", record.client_id)]
        if record.user_id is not None:
            subjects.append(("user", str(record.user_id)))
        for kind, subject in subjects:
            cutoff = await self._revocations.latest_cutoff(kind, subject)
            if cutoff is not None and claims.iat <= cutoff:
                return None
        return AccountCaller(claims, record, client, user, grant)

    async def log_out(self, caller: AccountCaller, revocations: RevocationService) -> None:
        """Revoke the token used, and its whole grant."""
        record = caller.record
        await revocations.revoke_access_token(record, reason="logout")
        if caller.grant is not None:
            await revocations.revoke_grant(
                caller.grant.id,
                reason="logout",
                client_id=caller.grant.client_id,
                user_id=caller.grant.user_id,
            )
        else:
            await revocations.revoke_sid(record.sid, reason="logout")
