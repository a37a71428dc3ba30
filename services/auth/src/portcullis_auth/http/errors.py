"""Error responses: every failure answers `{error, error_description}` JSON.

OAuth 2.0 errors carry their own code and status (RFC 6749 §5.2); Litestar's
HTTP errors (404, 405, 413, ...) and unreachable backends are mapped into the
same shape; anything unexpected is a bare `server_error`, never a trace.
"""

from __future__ import annotations

import logging
from typing import Any

import asyncpg
from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException
from redis.exceptions import RedisError
from sqlalchemy.exc import DataError, DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from portcullis_auth.http.pages import render
from portcullis_auth.http.pages.browser import PAGE_HEADERS, PageError
from portcullis_auth.keys.keyring import NoSigningKeyError
from portcullis_auth.oauth2.errors import OAuth2Error, TemporarilyUnavailableError
from portcullis_auth.security.passwords import CallerGoneError, PasswordCheckQueueFullError
from portcullis_auth.services.personal_access import NoPersonalAccessClientError
from portcullis_auth.services.tokens import ClientChangedError
from portcullis_shared.errors import BearerError, bearer_error_response
from portcullis_shared.openapi import API_RESPONSE_HEADERS

logger = logging.getLogger("portcullis.auth")

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
UNCACHED_API_HEADERS = {
    **NO_STORE,
    **{header.name: str(header.value) for header in API_RESPONSE_HEADERS},
}
"""What every error answer and token answer carries: never cached, loads nothing, and
framed nowhere."""

_HTTP_ERROR_CODES = {404: "not_found", 405: "invalid_request", 413: "invalid_request"}


def error_response(
    error: str, description: str, status_code: int, headers: dict[str, str] | None = None
) -> Response[dict[str, str]]:
    return Response(
        {"error": error, "error_description": description},
        status_code=status_code,
        media_type=MediaType.JSON,
        headers={**UNCACHED_API_HEADERS, **(headers or {})},
    )


def oauth2_error_handler(_: Request[Any, Any, Any], exc: OAuth2Error) -> Response[dict[str, str]]:
    return error_response(exc.error, exc.description, exc.status_code, exc.headers)


def http_error_handler(_: Request[Any, Any, Any], exc: HTTPException) -> Response[dict[str, str]]:
    status = exc.status_code
    headers = dict(exc.headers or {})
    code = _HTTP_ERROR_CODES.get(status, "invalid_request" if status < 500 else "server_error")
    description = exc.detail if status < 500 else "internal error"
    return error_response(code, description, status, headers)


def unavailable_handler(
    request: Request[Any, Any, Any], exc: Exception
) -> Response[dict[str, str]]:
    logger.warning("backend unavailable: %s", type(exc).__name__)
    return oauth2_error_handler(request, TemporarilyUnavailableError())


def client_changed_handler(
    request: Request[Any, Any, Any], exc: ClientChangedError
) -> Response[dict[str, str]]:
    """A client's row changed while a token for it was being issued, where no retry is
    made (the token endpoint retries): nothing was recorded; try again."""
    error = TemporarilyUnavailableError("the client changed while the token was issued")
    return oauth2_error_handler(request, error)


def no_key_handler(_: Request[Any, Any, Any], exc: NoSigningKeyError) -> Response[dict[str, str]]:
    logger.error("%s", exc)
    return error_response(
        "temporarily_unavailable", "no signing key is active", 503, {"Retry-After": "5"}
    )


def password_queue_full_handler(
    _: Request[Any, Any, Any], exc: PasswordCheckQueueFullError
) -> Response[dict[str, str]]:
    """More password checks are waiting than the queue holds: come back once they ran."""
    logger.warning("password check refused: the hashing queue is full")
    return error_response(
        "temporarily_unavailable",
        "too many logins at once; try again shortly",
        503,
        {"Retry-After": str(exc.retry_after)},
    )


def refused_value_handler(_: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, str]]:
    """The database refused a value (out of range, not storable): the request's fault."""
    logger.info("the database refused a value: %s", type(exc).__name__)
    return error_response("invalid_request", "a value in the request cannot be stored", 400)


def caller_gone_handler(
    _: Request[Any, Any, Any], exc: CallerGoneError
) -> Response[dict[str, str]]:
    """The client disconnected while its password check waited: nobody reads this."""
    return error_response("invalid_request", "the client disconnected", 400)


def page_error_handler(_: Request[Any, Any, Any], exc: PageError) -> Response[str]:
    """A page's request refused: an HTML page saying why, never a redirect."""
    body = render.page("Something is wrong", render.paragraph(exc.message, "error"))
    headers = {**PAGE_HEADERS, **exc.headers}
    return Response(body, status_code=exc.status, media_type=MediaType.HTML, headers=headers)


def internal_error_handler(_: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, str]]:
    logger.error("unhandled %s", type(exc).__name__, exc_info=exc)
    return error_response("server_error", "internal error", 500)


def bearer_error_handler(_: Request[Any, Any, Any], exc: BearerError) -> Response[dict[str, str]]:
    return bearer_error_response("portcullis", exc)


def no_pat_client_handler(
    _: Request[Any, Any, Any], exc: NoPersonalAccessClientError
) -> Response[dict[str, str]]:
    logger.error("%s", exc)
    return error_response(
        "temporarily_unavailable",
        "personal access tokens are not set up",
        503,
        {"Retry-After": "5"},
    )


EXCEPTION_HANDLERS = {
    PageError: page_error_handler,
    BearerError: bearer_error_handler,
    NoPersonalAccessClientError: no_pat_client_handler,
    OAuth2Error: oauth2_error_handler,
    HTTPException: http_error_handler,
    OperationalError: unavailable_handler,
    DataError: refused_value_handler,
    asyncpg.DataError: refused_value_handler,
    DBAPIError: unavailable_handler,
    PoolTimeoutError: unavailable_handler,
    asyncpg.PostgresError: unavailable_handler,  # Postgres's own statements (db/direct.py)
    asyncpg.InterfaceError: unavailable_handler,
    OSError: unavailable_handler,
    RedisError: unavailable_handler,
    NoSigningKeyError: no_key_handler,
    ClientChangedError: client_changed_handler,
    PasswordCheckQueueFullError: password_queue_full_handler,
    CallerGoneError: caller_gone_handler,
    Exception: internal_error_handler,
}
