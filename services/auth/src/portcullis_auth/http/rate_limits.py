"""The request budgets (`security/rate_limits.py`) spent at the HTTP edge.

Each limited route names its endpoint once: `address_budget(ENDPOINT)` as a guard
before anything else runs, and `spend_client_budget` (or the `client_budget` guard,
after the guard that finds the caller) once the client is known. Past a budget the
request is refused with 429, `Retry-After` and the `RateLimit-*` fields, in the
endpoint's own error format.
"""

from __future__ import annotations

from typing import Any

from litestar.connection import ASGIConnection
from litestar.handlers import BaseRouteHandler
from litestar.types import Guard

from portcullis_auth.http.authentication import account_caller
from portcullis_auth.http.pages.browser import PageError
from portcullis_auth.http.pages.session import caller_address
from portcullis_auth.oauth2.errors import RateLimitedError, rate_limit_headers
from portcullis_auth.records import Client
from portcullis_auth.runtime import AuthRuntime, runtime_of


async def spend_address_budget(runtime: AuthRuntime, endpoint: str, client_ip: str) -> None:
    refusal = await runtime.rate_limiter.spend_address(endpoint, client_ip)
    if refusal is not None:
        raise RateLimitedError(refusal)


async def spend_client_budget(runtime: AuthRuntime, endpoint: str, client: Client) -> None:
    refusal = await runtime.rate_limiter.spend_client(endpoint, client)
    if refusal is not None:
        raise RateLimitedError(refusal)


def address_budget(endpoint: str) -> Guard:
    """A guard spending the caller address's budget of `endpoint`."""

    async def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        runtime = runtime_of(connection.app.state)
        await spend_address_budget(runtime, endpoint, caller_address(runtime, connection))

    return guard


def page_address_budget(endpoint: str) -> Guard:
    """`address_budget` for a page a browser shows: refused as an error page."""

    async def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        runtime = runtime_of(connection.app.state)
        refusal = await runtime.rate_limiter.spend_address(
            endpoint, caller_address(runtime, connection)
        )
        if refusal is not None:
            raise PageError(
                "Too many requests from your network. Wait a minute, then try again.",
                429,
                rate_limit_headers(refusal),
            )

    return guard


def client_budget(endpoint: str) -> Guard:
    """A guard spending the budget of the client whose bearer token `bearer_caller`
    let in (so it runs after that guard)."""

    async def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        runtime = runtime_of(connection.app.state)
        await spend_client_budget(runtime, endpoint, account_caller(connection).client)

    return guard
