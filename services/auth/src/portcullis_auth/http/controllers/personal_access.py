"""Personal access tokens and logout: routes a user's own bearer token opens."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

import msgspec
from litestar import Controller, Response, delete, get, post
from litestar.exceptions import NotFoundException
from litestar.params import FromPath, JSONBody

from portcullis_auth.http.authentication import (
    ACCOUNT_SECURITY,
    BEARER_CALLER_ERRORS,
    FIRST_PARTY_ERRORS,
    bearer_caller,
    first_party_login,
)
from portcullis_auth.http.errors import NO_STORE
from portcullis_auth.http.rate_limits import address_budget, user_budget
from portcullis_auth.oauth2.errors import (
    InvalidRequestError,
    InvalidScopeError,
    InvalidTargetError,
    OAuth2Error,
)
from portcullis_auth.records import User
from portcullis_auth.runtime import AuthRuntime
from portcullis_auth.security.rate_limits import Endpoint
from portcullis_auth.services.account_tokens import AccountCaller, AccountTokenService
from portcullis_auth.services.personal_access import (
    PersonalAccessTokenRequestError,
    PersonalAccessTokenService,
)
from portcullis_auth.services.unit_of_work import UnitOfWork
from portcullis_shared.dependencies import Injected
from portcullis_shared.openapi import BEARER_ERROR, answers, error_responses
from portcullis_shared.text import NO_NUL

REFUSALS: dict[str, type[OAuth2Error]] = {
    "invalid_scope": InvalidScopeError,
    "invalid_target": InvalidTargetError,
}


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


RATE_LIMITED = error_responses(BEARER_ERROR, 429)


class PersonalAccessTokenController(Controller):
    path = "/oauth/personal-access-tokens"
    guards = [  # noqa: RUF012 - Litestar reads it here
        address_budget(Endpoint.PERSONAL_ACCESS),
        bearer_caller,
        user_budget(Endpoint.PERSONAL_ACCESS),
        first_party_login,
    ]
    security = ACCOUNT_SECURITY

    @post(
        "/",
        status_code=201,
        operation_class=answers(
            FIRST_PARTY_ERRORS,
            RATE_LIMITED,
            error_responses(
                BEARER_ERROR,
                400,
                413,
                s400="invalid_request (a malformed body, an expiry out of range), "
                "invalid_scope (a scope the caller's token lacks), invalid_target.",
            ),
        ),
    )
    async def create(
        self,
        runtime: Injected[AuthRuntime],
        caller: Injected[AccountCaller],
        first_party_user: Injected[User],
        personal_access_tokens: Injected[PersonalAccessTokenService],
        data: JSONBody[PersonalAccessTokenCreate],
    ) -> Response[PersonalAccessTokenCreated]:
        settings = runtime.settings.tokens
        try:
            created = await personal_access_tokens.create(
                first_party_user,
                name=data.name,
                scopes=data.scopes,
                caller_scopes=caller.claims.scopes,
                audience=caller.claims.aud,
                expires_in=settings.pat_ttl if data.expires_in is None else data.expires_in,
                max_ttl=settings.pat_max_ttl,
            )
        except PersonalAccessTokenRequestError as refused:
            raise REFUSALS.get(refused.error, InvalidRequestError)(str(refused)) from None
        grant = created.grant
        body = PersonalAccessTokenCreated(
            id=grant.id,
            name=grant.name,
            scopes=grant.scopes,
            access_token=created.access_token.token,
            expires_at=grant.expires_at,
        )
        return Response(body, status_code=201, headers=NO_STORE)

    @get("/", operation_class=answers(FIRST_PARTY_ERRORS, RATE_LIMITED))
    async def list_tokens(
        self,
        first_party_user: Injected[User],
        personal_access_tokens: Injected[PersonalAccessTokenService],
    ) -> list[PersonalAccessTokenOut]:
        return [
            PersonalAccessTokenOut(
                id=g.id,
                name=g.name,
                scopes=g.scopes,
                created_at=g.created_at,
                expires_at=g.expires_at,
            )
            for g in await personal_access_tokens.list(first_party_user)
        ]

    @delete(
        "/{token_id:uuid}",
        status_code=204,
        operation_class=answers(
            FIRST_PARTY_ERRORS,
            RATE_LIMITED,
            error_responses(BEARER_ERROR, 404, s404="not_found: no token of yours by that id."),
            instead_of=["400"],  # a path that is no UUID matches no route: 404
        ),
    )
    async def revoke(
        self,
        first_party_user: Injected[User],
        personal_access_tokens: Injected[PersonalAccessTokenService],
        token_id: FromPath[uuid.UUID],
    ) -> None:
        if not await personal_access_tokens.revoke(first_party_user, token_id):
            raise NotFoundException("no such personal access token")


class LogoutController(Controller):
    @post(
        "/oauth/logout",
        status_code=204,
        guards=[bearer_caller],
        security=ACCOUNT_SECURITY,
        operation_class=answers(
            BEARER_CALLER_ERRORS,
            error_responses(
                BEARER_ERROR,
                503,
                s503="The database, Redis or signing keys cannot be reached: the revocation "
                "is recorded and lands later.",
            ),
        ),
    )
    async def logout(self, caller: Injected[AccountCaller], uow: Injected[UnitOfWork]) -> None:
        """Revoke the bearer token used, and its whole grant."""
        await AccountTokenService(uow.session).log_out(caller, uow.revocations)
