"""Route guards, as Passport's middleware: `scopes`, `scope`, `user_required`, `client_only`.

Use them in a handler's `guards=[...]`; the principal itself is a handler's
`principal` parameter (the guard plugin provides it), or `current_principal`. They are coroutines because Litestar
runs a plain function guard in a worker thread, a hop per request that costs
more than the check.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from litestar import Request
from litestar.connection import ASGIConnection
from litestar.handlers import BaseRouteHandler

from portcullis_shared.errors import InsufficientScopeError, InvalidTokenError, MissingTokenError
from portcullis_shared.principal import Principal

Guard = Callable[[ASGIConnection[Any, Any, Any, Any], BaseRouteHandler], Awaitable[None]]


def current_principal(connection: ASGIConnection[Any, Any, Any, Any]) -> Principal:
    """The verified principal of this request (set by the guard's middleware)."""
    principal = connection.scope.get("user")
    if not isinstance(principal, Principal):
        raise MissingTokenError("authentication required")
    return principal


async def provide_principal(request: Request[Any, Any, Any]) -> Principal:
    """The `principal` a handler names as a parameter (the guard plugin registers it)."""
    return current_principal(request)


def scopes(*required: str) -> Guard:
    """Every listed scope is needed (Passport's `scopes`)."""

    async def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        principal = current_principal(connection)
        missing = [name for name in required if not principal.can(name)]
        if missing:
            raise InsufficientScopeError(
                "the token lacks a required scope", scope=" ".join(required)
            )

    return guard


def scope(*accepted: str) -> Guard:
    """Any one of the listed scopes is enough (Passport's `scope`)."""

    async def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        principal = current_principal(connection)
        if not any(principal.can(name) for name in accepted):
            raise InsufficientScopeError(
                "the token lacks a required scope", scope=" ".join(accepted)
            )

    return guard


async def user_required(
    connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler
) -> None:
    """The token must speak for a user, not a client on its own."""
    if current_principal(connection).is_client:
        raise InsufficientScopeError("this route needs a user's token")


async def client_only(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """The token must be a client-credentials token (Passport's `CheckClientCredentials`)."""
    if not current_principal(connection).is_client:
        raise InsufficientScopeError("this route needs a client's token")


__all__ = [
    "InvalidTokenError",
    "client_only",
    "current_principal",
    "provide_principal",
    "scope",
    "scopes",
    "user_required",
]
