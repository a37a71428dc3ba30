"""Error answers of the posts service: `{error, error_description}` JSON, never a trace."""

from __future__ import annotations

import logging
from typing import Any

from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException, ValidationException
from sqlalchemy.exc import DataError, DBAPIError, OperationalError

from portcullis_resource.services.posts import PostNotFoundError
from portcullis_shared.openapi import API_RESPONSE_HEADERS, BEARER_ERROR, error_responses

logger = logging.getLogger("portcullis.resource")

UNCACHED_API_HEADERS = {
    "Cache-Control": "no-store",
    **{header.name: str(header.value) for header in API_RESPONSE_HEADERS},
}

GUARD_ERRORS = error_responses(
    BEARER_ERROR,
    401,
    503,
    s401="No token (no error code), or invalid_token: bad, expired, revoked, or not for "
    "this service.",
    s503="Signing keys, the revocation list or the database cannot be reached (fail closed).",
)
"""What the guard answers on every protected route, before the handler runs."""
SCOPE_ERRORS = error_responses(
    BEARER_ERROR,
    403,
    s403="insufficient_scope: the token lacks the scope named in `scope`, or the route "
    "needs a user's token.",
)
"""What a route with a scope or user guard adds."""
INVALID_REQUEST = error_responses(
    BEARER_ERROR,
    400,
    s400="invalid_request: the parameters or body are malformed; `problems` names the fields.",
)
NO_SUCH_POST = error_responses(BEARER_ERROR, 404, s404="not_found: no such post.")

_CODES = {
    400: "invalid_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "invalid_request",
}


def _error(error: str, description: str, status: int, **extra: Any) -> Response[dict[str, Any]]:
    return Response(
        {"error": error, "error_description": description, **extra},
        status_code=status,
        media_type=MediaType.JSON,
        headers=dict(UNCACHED_API_HEADERS),
    )


def validation_error(
    _: Request[Any, Any, Any], exc: ValidationException
) -> Response[dict[str, Any]]:
    # Litestar's detail names the field and the rule broken; pass it on, no more.
    problems = [
        {"field": str(item.get("key", "")), "message": str(item.get("message", ""))}
        for item in (exc.extra if isinstance(exc.extra, list) else [])
        if isinstance(item, dict)
    ]
    return _error("invalid_request", exc.detail or "invalid request", 400, problems=problems)


def http_error(_: Request[Any, Any, Any], exc: HTTPException) -> Response[dict[str, Any]]:
    status = exc.status_code
    description = exc.detail if status < 500 else "internal error"
    response = _error(
        _CODES.get(status, "server_error" if status >= 500 else "invalid_request"),
        description,
        status,
    )
    if exc.headers:
        response.headers.update(exc.headers)
    return response


def not_found(_: Request[Any, Any, Any], __: PostNotFoundError) -> Response[dict[str, Any]]:
    return _error("not_found", "no such post", 404)


def refused_value(_: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    """The database refused a value (out of range, not storable): the request's fault."""
    logger.info("the database refused a value: %s", type(exc).__name__)
    return _error("invalid_request", "a value in the request cannot be stored", 400)


def unavailable(_: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    logger.warning("database unavailable: %s", type(exc).__name__)
    response = _error("temporarily_unavailable", "the service is temporarily unavailable", 503)
    response.headers["Retry-After"] = "1"
    return response


def internal_error(_: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    logger.error("unhandled %s", type(exc).__name__, exc_info=exc)
    return _error("server_error", "internal error", 500)


EXCEPTION_HANDLERS: dict[Any, Any] = {
    ValidationException: validation_error,
    HTTPException: http_error,
    PostNotFoundError: not_found,
    OperationalError: unavailable,
    DataError: refused_value,
    DBAPIError: unavailable,
    OSError: unavailable,
    Exception: internal_error,
}
