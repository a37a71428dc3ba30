"""Personal access tokens and logout: routes a user's own bearer token opens."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, delete, get, post
from litestar.datastructures import State
from litestar.exceptions import NotFoundException
from litestar.params import FromPath, JSONBody

from portcullis_auth.http.bearer import authenticate_bearer
from portcullis_auth.http.errors import NO_STORE
from portcullis_auth.http.publishing import publish_or_503
from portcullis_auth.runtime import runtime_of
from portcullis_auth.services.personal_access import PersonalAccessTokenService
from portcullis_auth.services.tokens import TokenService
from portcullis_shared.text import NO_NUL


class PersonalAccessTokenCreate(msgspec.Struct, forbid_unknown_fields=True):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=200, pattern=NO_NUL)]
    scopes: list[Annotated[str, msgspec.Meta(min_length=1, max_length=100, pattern=NO_NUL)]]
    expires_in: int | None = None


class PersonalAccessTokenOut(msgspec.Struct):
    id: uuid.UUID
    name: str | None
    scopes: list[str]
    created_at: datetime
    expires_at: datetime


class PersonalAccessTokenCreated(msgspec.Struct):
    id: uuid.UUID
    name: str | None
    scopes: list[str]
    access_token: str
    expires_at: datetime


class PersonalAccessTokenController(Controller):
    path = "/oauth/personal-access-tokens"

    @post("/", status_code=201)
    async def create(
        self,
        request: Request[Any, Any, State],
        state: State,
        data: JSONBody[PersonalAccessTokenCreate],
    ) -> Response[PersonalAccessTokenCreated]:
        runtime = runtime_of(state)
        settings = runtime.settings.tokens
        async with runtime.sessionmaker() as session:
            caller = await authenticate_bearer(request, runtime, session)
            user = caller.require_first_party_user_token()
            service = PersonalAccessTokenService(
                session, TokenService(session, settings, runtime.keyring)
            )
            created = await service.create(
                user,
                name=data.name,
                scopes=data.scopes,
                caller_scopes=caller.claims.scopes,
                expires_in=settings.pat_ttl if data.expires_in is None else data.expires_in,
                max_ttl=settings.pat_max_ttl,
            )
            await session.commit()
        grant = created.grant
        body = PersonalAccessTokenCreated(
            id=grant.id,
            name=grant.name,
            scopes=grant.scopes,
            access_token=created.access_token.token,
            expires_at=grant.expires_at,
        )
        return Response(body, status_code=201, headers=NO_STORE)

    @get("/")
    async def list_tokens(
        self, request: Request[Any, Any, State], state: State
    ) -> list[PersonalAccessTokenOut]:
        runtime = runtime_of(state)
        async with runtime.sessionmaker() as session:
            caller = await authenticate_bearer(request, runtime, session)
            user = caller.require_first_party_user_token()
            service = PersonalAccessTokenService(
                session, TokenService(session, runtime.settings.tokens, runtime.keyring)
            )
            grants = await service.list(user)
        return [
            PersonalAccessTokenOut(
                id=g.id,
                name=g.name,
                scopes=g.scopes,
                created_at=g.created_at,
                expires_at=g.expires_at,
            )
            for g in grants
        ]

    @delete("/{token_id:uuid}", status_code=204)
    async def revoke(
        self, request: Request[Any, Any, State], state: State, token_id: FromPath[uuid.UUID]
    ) -> None:
        runtime = runtime_of(state)
        async with runtime.sessionmaker() as session:
            caller = await authenticate_bearer(request, runtime, session)
            user = caller.require_first_party_user_token()
            tokens = TokenService(session, runtime.settings.tokens, runtime.keyring)
            grant = await PersonalAccessTokenService(session, tokens).find(user, token_id)
            if grant is None:
                raise NotFoundException("no such personal access token")
            await tokens.revocations.revoke_grant(grant, reason="personal_access_token_deleted")
            await session.commit()
        await publish_or_503(runtime, tokens.revocations.recorded)


class LogoutController(Controller):
    @post("/oauth/logout", status_code=204)
    async def logout(self, request: Request[Any, Any, State], state: State) -> None:
        """Revoke the bearer token used, and its whole grant."""
        runtime = runtime_of(state)
        async with runtime.sessionmaker() as session:
            caller = await authenticate_bearer(request, runtime, session)
            tokens = TokenService(session, runtime.settings.tokens, runtime.keyring)
            await tokens.revocations.revoke_access_token(caller.record, reason="logout")
            if caller.grant is not None:
                await tokens.revocations.revoke_grant(caller.grant, reason="logout")
            else:
                await tokens.revocations.revoke_sid(caller.record.sid, reason="logout")
            await session.commit()
        await publish_or_503(runtime, tokens.revocations.recorded)
