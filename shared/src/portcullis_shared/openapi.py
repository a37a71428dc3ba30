"""How both services describe their API, and the headers every API answer carries.

Only the OpenAPI document is served (`/schema/openapi.json`): Litestar's
explorer pages load their scripts from a CDN, and on the posts service they
would share an origin with the playground and the login proxy. Any OpenAPI
explorer can load the document instead. Every JSON answer carries a CSP that
lets it load nothing and be framed nowhere; a page that needs more (the
playground) sets its own.

The document says how to get a token (the `OAuth2` scheme, with the auth
service's real URLs), which routes need one and with which scopes, and every
error a route can answer, in that route's own format, with the headers a
client acts on (`WWW-Authenticate`, `Retry-After`, `RateLimit-*`). Litestar
writes a route's success answer from its handler; `answers()` adds the errors,
and `complete_document()` adds what Litestar cannot see: raw ASGI routes and
the named error schemas.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import msgspec
from litestar import Litestar
from litestar.datastructures import ResponseHeader
from litestar.enums import MediaType
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin
from litestar.openapi.spec import (
    Components,
    OAuthFlow,
    OAuthFlows,
    OpenAPIHeader,
    OpenAPIMediaType,
    OpenAPIResponse,
    OpenAPIType,
    Operation,
    Parameter,
    PathItem,
    Reference,
    RequestBody,
    Schema,
    SecurityRequirement,
    SecurityScheme,
)

API_RESPONSE_HEADERS = [
    ResponseHeader(
        name="Content-Security-Policy", value="default-src 'none'; frame-ancestors 'none'"
    ),
    ResponseHeader(name="X-Content-Type-Options", value="nosniff"),
]

FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"

OAUTH2 = "OAuth2"
"""The OAuth 2.0 scheme: how a client gets a token, and the scopes a route needs."""
BEARER = "BearerJWT"
"""The same token as RFC 6750 sends it: `Authorization: Bearer <JWT>`."""
CLIENT_BASIC = "ClientSecretBasic"
"""A client's own credentials at the token, revocation, introspection and device endpoints."""


def openapi_config(title: str, *, issuer: str, scopes: Mapping[str, str]) -> OpenAPIConfig:
    """The document at /schema/openapi.json, and nothing else under /schema.

    `issuer`: the auth service's public URL, where clients get tokens; `scopes`:
    the scopes this service's routes may require, with their descriptions."""
    return OpenAPIConfig(
        title=title,
        version="0.1.0",
        path="/schema",
        render_plugins=[JsonRenderPlugin()],
        components=Components(security_schemes=security_schemes(issuer, scopes)),
    )


def security_schemes(
    issuer: str, scopes: Mapping[str, str]
) -> dict[str, SecurityScheme | Reference]:
    token_url = f"{issuer}/oauth/token"
    scope_map = dict(sorted(scopes.items()))
    return {
        OAUTH2: SecurityScheme(
            type="oauth2",
            description=(
                "Tokens from the auth service. The authorization code flow requires PKCE "
                "(S256). Devices without a browser use the device authorization grant "
                f"(RFC 8628), which OpenAPI has no flow for: POST {issuer}/oauth/device/code, "
                "then poll the token URL with grant_type="
                "urn:ietf:params:oauth:grant-type:device_code. The password grant is for "
                "first-party clients allowed it."
            ),
            flows=OAuthFlows(
                password=OAuthFlow(token_url=token_url, refresh_url=token_url, scopes=scope_map),
                client_credentials=OAuthFlow(token_url=token_url, scopes=scope_map),
                authorization_code=OAuthFlow(
                    authorization_url=f"{issuer}/oauth/authorize",
                    token_url=token_url,
                    refresh_url=token_url,
                    scopes=scope_map,
                ),
            ),
        ),
        BEARER: SecurityScheme(
            type="http",
            scheme="bearer",
            bearer_format="JWT",
            description="An access token (RFC 9068 JWT) in `Authorization: Bearer`; "
            "never in the query string.",
        ),
        CLIENT_BASIC: SecurityScheme(
            type="http",
            scheme="basic",
            description="client_secret_basic (RFC 6749 §2.3.1): the client id and secret, "
            "each form-urlencoded. client_secret_post sends them in the form instead; a "
            "public client sends its client_id alone.",
        ),
    }


def bearer_security(*scopes: str) -> list[SecurityRequirement]:
    """A route that needs an access token holding every one of `scopes`."""
    return [{OAUTH2: list(scopes)}, {BEARER: list(scopes)}]


CLIENT_SECURITY: list[SecurityRequirement] = [{CLIENT_BASIC: []}, {}]
"""A route a client authenticates to with Basic, or in the form body (`{}`)."""


@dataclass(frozen=True, slots=True)
class ErrorFormat:
    """An error body as a family of routes answers it, and the headers each status brings."""

    name: str
    schema: Schema
    headers: Mapping[int, Mapping[str, OpenAPIHeader]]

    @property
    def reference(self) -> Reference:
        return Reference(ref=f"#/components/schemas/{self.name}")


def text(description: str, **extra: Any) -> Schema:
    """A string property of a described body."""
    return Schema(type=OpenAPIType.STRING, description=description, **extra)


def _header(description: str, *, required: bool) -> OpenAPIHeader:
    return OpenAPIHeader(
        schema=Schema(type=OpenAPIType.STRING), description=description, required=required
    )


RETRY_AFTER = {"Retry-After": _header("Seconds to wait before trying again.", required=True)}
RATE_LIMITED = {
    **RETRY_AFTER,
    "RateLimit-Limit": _header("Requests allowed in the window.", required=False),
    "RateLimit-Remaining": _header("Requests left in the window.", required=False),
    "RateLimit-Reset": _header("Seconds until the window resets.", required=False),
    "RateLimit-Policy": _header("The quota and its window, e.g. `1200;w=60`.", required=False),
}
"""A 429's headers: `Retry-After` always; the RateLimit fields where a limiter answered."""

_ERROR_CODE = text(
    "An RFC 6749 §5.2 error code (invalid_request, invalid_client, invalid_grant, "
    "unauthorized_client, unsupported_grant_type, invalid_scope; invalid_target, RFC 8707; "
    "authorization_pending, slow_down, access_denied, expired_token, RFC 8628; "
    "temporarily_unavailable), or not_found."
)

OAUTH2_ERROR = ErrorFormat(
    name="OAuth2Error",
    schema=Schema(
        type=OpenAPIType.OBJECT,
        description="RFC 6749 §5.2 error response.",
        required=["error", "error_description"],
        properties={"error": _ERROR_CODE, "error_description": text("What went wrong.")},
        additional_properties=False,
    ),
    headers={
        401: {
            "WWW-Authenticate": _header(
                "`Basic` when the client authenticated with Basic.", required=False
            )
        },
        429: RATE_LIMITED,
        503: RETRY_AFTER,
    },
)
"""/oauth/token, /oauth/revoke, /oauth/introspect, /oauth/device/code and the login proxy."""

_WWW_AUTHENTICATE = {
    "WWW-Authenticate": _header(
        'RFC 6750 §3 challenge: `Bearer realm="…"`, with `error` and `error_description` '
        "when a token was refused, and `scope` naming the scope needed.",
        required=True,
    )
}

BEARER_ERROR = ErrorFormat(
    name="BearerError",
    schema=Schema(
        type=OpenAPIType.OBJECT,
        description="The error of a bearer-protected route; the same code as the "
        "WWW-Authenticate challenge (RFC 6750 §3.1), `unauthorized` when no token came.",
        required=["error", "error_description"],
        properties={
            "error": text(
                "unauthorized, invalid_token, insufficient_scope, invalid_request, "
                "invalid_scope, invalid_target, not_found or temporarily_unavailable."
            ),
            "error_description": text("What went wrong."),
            "scope": text("The scope needed (with insufficient_scope)."),
            "problems": Schema(
                type=OpenAPIType.ARRAY,
                description="Which fields of the body are wrong, and why.",
                items=Schema(
                    type=OpenAPIType.OBJECT,
                    required=["field", "message"],
                    properties={"field": text("The field."), "message": text("Why.")},
                ),
            ),
        },
        additional_properties=False,
    ),
    headers={401: _WWW_AUTHENTICATE, 403: _WWW_AUTHENTICATE, 429: RATE_LIMITED, 503: RETRY_AFTER},
)
"""Routes that take a bearer token (RFC 6750)."""

ERROR_FORMATS = (OAUTH2_ERROR, BEARER_ERROR)

_MEANINGS = {
    400: "The request is malformed or refused.",
    401: "No valid credentials came.",
    403: "The token lacks a scope or a user the route needs.",
    404: "No such resource.",
    413: "The body is too large.",
    429: "Too many requests or failed attempts: wait `Retry-After` seconds.",
    503: "A backend (database, Redis, signing keys) cannot be reached: wait `Retry-After` "
    "seconds. Nothing was changed or issued.",
}


def page_responses(*statuses: int, **descriptions: str) -> dict[str, OpenAPIResponse]:
    """The error answers of a page for people (sign-in, consent): an HTML page saying why."""
    return {
        str(status): OpenAPIResponse(
            description=descriptions.get(f"s{status}", _MEANINGS[status]),
            headers=dict(RATE_LIMITED) if status == 429 else None,
            content={
                MediaType.HTML.value: OpenAPIMediaType(schema=Schema(type=OpenAPIType.STRING))
            },
        )
        for status in statuses
    }


def error_responses(
    error_format: ErrorFormat, *statuses: int, **descriptions: str
) -> dict[str, OpenAPIResponse]:
    """The error answers `statuses` in `error_format`; `descriptions` (`s400="..."`)
    says more than the generic meaning of a status for this route."""
    responses = {}
    for status in statuses:
        headers = error_format.headers.get(status)
        responses[str(status)] = OpenAPIResponse(
            description=descriptions.get(f"s{status}", _MEANINGS[status]),
            headers=dict(headers) if headers else None,
            content={MediaType.JSON.value: OpenAPIMediaType(schema=error_format.reference)},
        )
    return responses


def answers(
    *responses: Mapping[str, OpenAPIResponse],
    instead_of: Iterable[str] = (),
    body: RequestBody | None = None,
    parameters: Iterable[Parameter] = (),
) -> type[Operation]:
    """A handler's `operation_class`: its operation with `responses` added, replacing
    any Litestar wrote for the same status (its generic 400) and those in `instead_of`;
    `body` and `parameters` describe what a handler that reads the raw request takes."""
    extra: dict[str, OpenAPIResponse] = {}
    for group in responses:
        extra.update(group)
    dropped = frozenset(instead_of)
    query = list(parameters)

    @dataclass
    class AnsweredOperation(Operation):
        def __post_init__(self) -> None:
            kept = {
                status: response
                for status, response in (self.responses or {}).items()
                if status not in dropped
            }
            self.responses = {**kept, **extra}
            if body is not None:
                self.request_body = body
            if query:
                self.parameters = [*(self.parameters or []), *query]

    return AnsweredOperation


def form_body(schema: Schema, *, json: bool = False) -> RequestBody:
    """A required body of `schema` as a form (RFC 6749's encoding), or JSON as well."""
    content = {FORM_CONTENT_TYPE: OpenAPIMediaType(schema=schema)}
    if json:
        content[MediaType.JSON.value] = OpenAPIMediaType(schema=schema)
    return RequestBody(required=True, content=content)


def complete_document(
    app: Litestar,
    paths: Mapping[str, PathItem] | None = None,
    strict_bodies: Iterable[type[msgspec.Struct]] = (),
) -> None:
    """Add to `app`'s document what its handlers cannot say: `paths` of raw ASGI routes,
    the error schemas the answers refer to, and that `strict_bodies` refuse fields they
    do not name (`forbid_unknown_fields`, which Litestar leaves out). The document is
    built here, once, as Litestar builds it: every route is registered by now."""
    document = app.openapi_schema
    document.paths = {**(document.paths or {}), **(paths or {})}
    schemas = {
        **(document.components.schemas or {}),
        **{error_format.name: error_format.schema for error_format in ERROR_FORMATS},
    }
    for body in strict_bodies:
        if not body.__struct_config__.forbid_unknown_fields:
            raise ValueError(f"{body.__name__} accepts unknown fields")
        schemas[body.__name__].additional_properties = False
    document.components.schemas = schemas


def json_content(schema: Schema | Reference) -> dict[str, OpenAPIMediaType]:
    return {MediaType.JSON.value: OpenAPIMediaType(schema=schema)}


def object_schema(
    required: Mapping[str, Schema],
    optional: Mapping[str, Schema] | None = None,
    *,
    closed: bool = True,
    **extra: Any,
) -> Schema:
    """An object with `required` and `optional` properties, and (`closed`) nothing else:
    an answer's exact fields; a request whose unknown fields are ignored is not closed."""
    return Schema(
        type=OpenAPIType.OBJECT,
        required=list(required) or None,
        properties={**required, **(optional or {})},
        additional_properties=False if closed else None,
        **extra,
    )


TOKEN_RESPONSE = object_schema(
    {
        "access_token": text("An RFC 9068 JWT."),
        "token_type": Schema(type=OpenAPIType.STRING, enum=["Bearer"]),
        "expires_in": Schema(type=OpenAPIType.INTEGER, description="Seconds the token lives."),
        "scope": text("The token's scopes, space-separated."),
    },
    {"refresh_token": text("Opaque; every grant but client_credentials gives one.")},
    title="TokenResponse",
    description="RFC 6749 §5.1; sent with Cache-Control: no-store.",
)
"""The token endpoint's answer, and the login proxy's."""

_CHECK = Schema(type=OpenAPIType.STRING, enum=["ok", "unavailable"])
READINESS = Schema(
    type=OpenAPIType.OBJECT,
    required=["status"],
    properties={"status": _CHECK},
    additional_properties=_CHECK,
    description="`status`, and each dependency checked (database, redis, keys).",
)
READINESS_ANSWERS = answers(
    {
        "200": OpenAPIResponse(description="Ready.", content=json_content(READINESS)),
        "503": OpenAPIResponse(
            description="A dependency is unavailable: take no traffic.",
            content=json_content(READINESS),
        ),
    }
)
"""`/readyz` of either service: the same body, ready or not."""
