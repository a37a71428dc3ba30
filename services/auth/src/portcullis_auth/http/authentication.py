"""Who calls the auth service's own bearer routes (logout, personal access tokens).

Guards, so that a caller is known (or refused) before the request's unit of
work is opened and its body read: `bearer_caller` verifies the token (our own
keys, our issuer, one of `PORTCULLIS_ACCOUNT_AUDIENCES`) and checks that it is
still live; `first_party_login` then requires a user's token from a
first-party login. Handlers name `caller` or `first_party_user` to be handed
the result (`http/dependencies.py`).
"""

from __future__ import annotations

from typing import Any

from litestar.connection import ASGIConnection
from litestar.handlers import BaseRouteHandler

from portcullis_auth.records import User
from portcullis_auth.runtime import runtime_of
from portcullis_auth.services.account_tokens import AccountCaller, AccountTokenService
from portcullis_shared.errors import InsufficientScopeError, InvalidTokenError
from portcullis_shared.openapi import BEARER_ERROR, bearer_security, error_responses
from portcullis_shared.plugin import bearer_token

Connection = ASGIConnection[Any, Any, Any, Any]

ACCOUNT_SECURITY = bearer_security()
"""The routes these guards open need a token, whatever its scopes."""
BEARER_CALLER_ERRORS = error_responses(
    BEARER_ERROR,
    401,
    503,
    s401="No token, or a bad, expired, revoked or foreign one (aud not an account audience).",
    s503="The database or signing keys cannot be reached.",
)
"""What `bearer_caller` answers."""
FIRST_PARTY_ERRORS = {
    **BEARER_CALLER_ERRORS,
    **error_responses(
        BEARER_ERROR,
        403,
        s403="insufficient_scope: the token is not a user's from a first-party login (a "
        "personal access token or a client's token).",
    ),
}
"""What `bearer_caller` and `first_party_login` answer."""


async def bearer_caller(connection: Connection, _: BaseRouteHandler) -> None:
    runtime = runtime_of(connection.app.state)
    claims = await runtime.own_token_verifier.verify(bearer_token(connection))
    async with runtime.sessionmaker() as session:
        caller = await AccountTokenService(session).caller(claims)
    if caller is None:
        raise InvalidTokenError("token revoked")
    connection.scope["user"] = caller


async def first_party_login(connection: Connection, _: BaseRouteHandler) -> None:
    if account_caller(connection).first_party_user() is None:
        raise InsufficientScopeError("this needs a user's token from a first-party login")


def account_caller(connection: Connection) -> AccountCaller:
    caller = connection.scope.get("user")
    if not isinstance(caller, AccountCaller):
        raise InvalidTokenError("a bearer token is required")  # no guard ran: a wiring error
    return caller


def first_party_user(connection: Connection) -> User:
    user = account_caller(connection).first_party_user()
    if user is None:
        raise InsufficientScopeError("this needs a user's token from a first-party login")
    return user
