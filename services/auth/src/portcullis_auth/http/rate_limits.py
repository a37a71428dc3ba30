"""The request budgets (`security/rate_limits.py`) spent at the HTTP edge.

Each limited route names its endpoint once: `address_budget(ENDPOINT)` (with
`page=True` on a page a browser shows) as a guard before anything else
runs; the client's budget is spent where the client is authenticated
(`oauth2/client_auth.py:authenticate_within_budget`), or by `user_budget` after the
guard that finds a bearer token's caller. Past a budget the request is refused with
429, `Retry-After` and the `RateLimit-*` fields, in the endpoint's own error format.
"""

from __future__ import annotations

from typing import Any

from litestar.connection import ASGIConnection
from litestar.handlers import BaseRouteHandler
from litestar.types import Guard

from portcullis_auth.http.authentication import account_caller
from portcullis_auth.http.client_address import caller_address
from portcullis_auth.http.pages.browser import PageError
from portcullis_auth.oauth2.errors import RateLimitedError
from portcullis_auth.runtime import AuthRuntime, runtime_of
from portcullis_auth.security.rate_limits import Endpoint


def spend_address_budget(runtime: AuthRuntime, endpoint: Endpoint, client_ip: str) -> None:
    refusal = runtime.rate_limiter.spend_address(endpoint, client_ip)
    if refusal is not None:
        raise RateLimitedError(refusal)


def address_budget(endpoint: Endpoint, *, page: bool = False) -> Guard:
    """A guard spending the caller address's budget of `endpoint`; on a `page` a
    browser shows, refused as an error page rather than as RFC 6749 JSON."""

    async def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        runtime = runtime_of(connection.app.state)
        try:
            spend_address_budget(runtime, endpoint, caller_address(runtime, connection))
        except RateLimitedError as refused:
            if not page:
                raise
            raise PageError(
                "Too many requests from your network. Wait a minute, then try again.",
                429,
                refused.headers,
            ) from None

    return guard


def user_budget(endpoint: Endpoint) -> Guard:
    """A guard spending the budget of the user whose bearer token `bearer_caller` let
    in (so it runs after that guard), counted within the token's client: one user of a
    shared first-party client cannot spend every other user's."""

    async def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        runtime = runtime_of(connection.app.state)
        caller = account_caller(connection)
        refusal = runtime.rate_limiter.spend_user(endpoint, caller.client, str(caller.claims.sub))
        if refusal is not None:
            raise RateLimitedError(refusal)

    return guard
