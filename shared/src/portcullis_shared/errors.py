"""RFC 6750 §3 error answers of a protected resource.

401 without an error code when no token came; 401 `invalid_token`; 403
`insufficient_scope` naming the scope needed; 503 with `Retry-After` when
keys or the revocation list cannot be reached (fail closed).
"""

from __future__ import annotations

from typing import Any, ClassVar

from litestar import MediaType, Request, Response


class BearerError(Exception):
    status_code: ClassVar[int] = 401
    error: ClassVar[str | None] = None

    def __init__(self, description: str, *, scope: str | None = None) -> None:
        super().__init__(description)
        self.description = description
        self.scope = scope


class MissingTokenError(BearerError):
    """§3.1: the request carried no token; the challenge names no error."""


class InvalidTokenError(BearerError):
    """Bad, expired, revoked or foreign token."""

    error = "invalid_token"


class InsufficientScopeError(BearerError):
    status_code = 403
    error = "insufficient_scope"


class GuardUnavailableError(BearerError):
    """Keys or the revocation list cannot be reached and nothing usable is cached."""

    status_code = 503
    error = "temporarily_unavailable"


def _quote(value: str) -> str:
    # §3: quoted-string; the values we emit never need more than this.
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def challenge(realm: str, error: BearerError) -> str:
    parts = [f"realm={_quote(realm)}"]
    if error.error is not None and error.status_code in (401, 403):
        parts.append(f"error={_quote(error.error)}")
        parts.append(f"error_description={_quote(error.description)}")
    if error.scope:
        parts.append(f"scope={_quote(error.scope)}")
    return "Bearer " + ", ".join(parts)


def bearer_error_response(realm: str, error: BearerError) -> Response[dict[str, str]]:
    headers = {"Cache-Control": "no-store"}
    if error.status_code == 503:
        headers["Retry-After"] = "1"
    else:
        headers["WWW-Authenticate"] = challenge(realm, error)
    body = {"error": error.error or "unauthorized", "error_description": error.description}
    if error.scope:
        body["scope"] = error.scope
    return Response(body, status_code=error.status_code, media_type=MediaType.JSON, headers=headers)


def make_bearer_error_handler(realm: str) -> Any:
    def handler(_: Request[Any, Any, Any], error: BearerError) -> Response[dict[str, str]]:
        return bearer_error_response(realm, error)

    return handler
