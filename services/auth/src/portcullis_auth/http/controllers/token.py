"""POST /oauth/token (RFC 6749 §3.2).

The busiest route, so it is a plain ASGI handler: it reads the form and writes
the JSON answer itself, skipping Litestar's parameter parsing and response
building (a fifth of a token's CPU time). Failures are raised as everywhere
else and answered by the app's exception handlers (`http/errors.py`).
"""

from __future__ import annotations

from functools import partial

import msgspec
from litestar import Litestar, asgi
from litestar.enums import ScopeType
from litestar.exceptions import HTTPException, MethodNotAllowedException
from litestar.openapi.spec import OpenAPIResponse, OpenAPIType, Operation, PathItem, Schema
from litestar.types import HTTPScope, Receive, Scope, Send

from portcullis_auth.http.errors import UNCACHED_API_HEADERS
from portcullis_auth.http.rate_limits import spend_address_budget
from portcullis_auth.oauth2.errors import (
    InvalidRequestError,
    OAuth2Error,
    TemporarilyUnavailableError,
)
from portcullis_auth.oauth2.request import TokenRequest, parse_form
from portcullis_auth.oauth2.responses import TokenResponse
from portcullis_auth.oauth2.token_endpoint import handle_token_request
from portcullis_auth.runtime import AuthRuntime, runtime_of
from portcullis_auth.security.rate_limits import Endpoint
from portcullis_auth.services.tokens import ClientChangedError
from portcullis_shared.client_ip import client_ip
from portcullis_shared.openapi import (
    CLIENT_SECURITY,
    OAUTH2_ERROR,
    TOKEN_RESPONSE,
    error_responses,
    form_body,
    json_content,
    text,
)
from portcullis_shared.request import until_disconnected

MAX_TOKEN_REQUEST_BYTES = 16 * 1024
"""A token request is a handful of short parameters."""

CLIENT_READS = 2
"""Attempts at a token request whose client's row changes under it: the first may
use a cached copy, the second reads the row afresh."""

_RESPONSE_HEADERS = [
    (b"content-type", b"application/json"),
    *((name.lower().encode(), value.encode()) for name, value in UNCACHED_API_HEADERS.items()),
]
"""A token answer's headers: never cached (RFC 6749 §5.1), and as every API answer's."""


@asgi("/oauth/token", copy_scope=False)  # mounts nothing
async def token_endpoint(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != ScopeType.HTTP or scope["method"] != "POST":
        raise MethodNotAllowedException(
            "the token endpoint accepts POST only", headers={"Allow": "POST"}
        )
    runtime = runtime_of(Litestar.from_scope(scope).state)
    headers = _Headers(scope)
    peer = scope.get("client")
    address = client_ip(
        peer[0] if peer else None,
        headers.joined(b"x-forwarded-for"),
        runtime.settings.server.trusted_proxies,
    )
    spend_address_budget(runtime, Endpoint.TOKEN, address)
    form = parse_form(
        await _read_body(receive, headers.one(b"content-length")),
        headers.one(b"content-type"),
    )
    token_request = TokenRequest(
        form=form,
        authorization=headers.one(b"authorization"),
        client_ip=address,
        caller_gone=partial(until_disconnected, receive),
    )
    answer = msgspec.json.encode((await answer_token_request(runtime, token_request)).to_dict())
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [*_RESPONSE_HEADERS, (b"content-length", str(len(answer)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": answer, "more_body": False})


async def answer_token_request(runtime: AuthRuntime, token_request: TokenRequest) -> TokenResponse:
    """Run the request's grant: a token response, committed, or an OAuth2Error."""
    for _ in range(CLIENT_READS):
        async with runtime.request_sessions() as session, runtime.token_store() as store:
            uow = runtime.unit_of_work(session)
            try:
                response = await handle_token_request(
                    token_request, runtime.grant_context(uow, store)
                )
            except ClientChangedError as changed:
                # Nothing was recorded (rolled back with the session, or never written);
                # read the client afresh and start over.
                runtime.clients.forget(changed.client_id)
                continue
            except OAuth2Error as error:
                if error.keep_changes:
                    await uow.commit_quietly()
                raise
            # Committed before answering: a token is only handed out once it is recorded.
            await uow.commit()
            return response
    raise TemporarilyUnavailableError()  # the client keeps changing under us


class _Headers:
    """The request's headers by lower-case name."""

    __slots__ = ("_values",)

    def __init__(self, scope: HTTPScope) -> None:
        self._values: dict[bytes, list[bytes]] = {}
        for name, value in scope["headers"]:
            self._values.setdefault(name.lower(), []).append(value)

    def one(self, name: bytes) -> str | None:
        """A header that may be sent once: sent twice it is `invalid_request`, as two
        ways to authenticate or two body types would be ambiguous (RFC 6749 §2.3)."""
        values = self._values.get(name)
        if values is None:
            return None
        if len(values) > 1:
            raise InvalidRequestError(f"header given more than once: {name.decode()}")
        return values[0].decode("latin-1")

    def joined(self, name: bytes) -> str | None:
        """A list header sent as several lines, as one (RFC 9110 §5.3): a proxy that
        adds its own X-Forwarded-For line must not leave the client's forgery first."""
        values = self._values.get(name)
        return None if values is None else b",".join(values).decode("latin-1")


async def _read_body(receive: Receive, content_length: str | None) -> bytes:
    """The whole body, refused (413) past MAX_TOKEN_REQUEST_BYTES whether or not it
    announced its length."""
    if _announces_too_much(content_length):
        raise _too_large()
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            raise HTTPException(status_code=400, detail="the client disconnected")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_TOKEN_REQUEST_BYTES:
            raise _too_large()
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _announces_too_much(content_length: str | None) -> bool:
    """Whether Content-Length announces more than MAX_TOKEN_REQUEST_BYTES. Only ASCII
    digits make a length (RFC 9110 §8.6): `str.isdigit` also passes "²" (byte 0xB2 read
    as Latin-1), and `int` refuses a number of thousands of digits. Anything else
    announces nothing; the read counts the bytes either way."""
    if not content_length or not (content_length.isascii() and content_length.isdigit()):
        return False
    digits = content_length.lstrip("0")
    if len(digits) > len(str(MAX_TOKEN_REQUEST_BYTES)):
        return True
    return int(digits or "0") > MAX_TOKEN_REQUEST_BYTES


def _too_large() -> HTTPException:
    return HTTPException(status_code=413, detail="the request body is too large")


CLIENT_FIELDS = {
    "client_id": text("client_secret_post, or a public client; beside Basic it must match."),
    "client_secret": text("client_secret_post; never beside Basic."),
}
SCOPE_FIELDS = {
    "scope": text("Space-separated scopes; none: the client's default scopes."),
    "resource": text("RFC 8707: the audience (`aud`) wanted, one the client may name."),
}


def _grant(grant_type: str, title: str, **fields: Schema) -> Schema:
    """One grant's form: its `grant_type`, its required parameters, and the optional ones
    every grant takes (unknown parameters are ignored, RFC 6749 §3.2)."""
    return Schema(
        type=OpenAPIType.OBJECT,
        title=title,
        required=["grant_type", *fields],
        properties={
            "grant_type": Schema(type=OpenAPIType.STRING, enum=[grant_type]),
            **fields,
            **CLIENT_FIELDS,
            **SCOPE_FIELDS,
        },
    )


TOKEN_REQUEST = Schema(
    one_of=[
        _grant(
            "password",
            "Password grant (RFC 6749 §4.3)",
            username=text("The user's email."),
            password=text("The user's password.", format="password"),
        ),
        _grant("client_credentials", "Client credentials grant (RFC 6749 §4.4)"),
        _grant(
            "refresh_token",
            "Refresh (RFC 6749 §6): rotates the refresh token",
            refresh_token=text("The refresh token."),
        ),
        _grant(
            "authorization_code",
            "Authorization code grant with PKCE (RFC 6749 §4.1.3, RFC 7636)",
            code=text("The code from the redirect."),
            redirect_uri=text("The redirect URI the code was sent to."),
            code_verifier=text("The PKCE verifier of the code's S256 challenge."),
        ),
        _grant(
            "urn:ietf:params:oauth:grant-type:device_code",
            "Device authorization grant (RFC 8628 §3.4)",
            device_code=text("The device_code from /oauth/device/code."),
        ),
    ]
)

DOCUMENT = {
    "/oauth/token": PathItem(
        post=Operation(
            operation_id="OauthToken",
            summary="Token",
            description="RFC 6749 §3.2: every grant. Errors are RFC 6749 §5.2 JSON.",
            security=CLIENT_SECURITY,
            request_body=form_body(TOKEN_REQUEST),
            responses={
                "200": OpenAPIResponse(
                    description="A token (and a refresh token where the grant gives one).",
                    content=json_content(TOKEN_RESPONSE),
                ),
                **error_responses(
                    OAUTH2_ERROR,
                    400,
                    401,
                    413,
                    429,
                    503,
                    s400="invalid_request, invalid_grant, unauthorized_client, "
                    "unsupported_grant_type, invalid_scope, invalid_target; for the device "
                    "grant also authorization_pending, slow_down, access_denied, expired_token.",
                    s401="invalid_client: the client is unknown or its secret wrong.",
                    s429="Too many failed passwords for this user and address, or for this "
                    "address, or too many requests: temporarily_unavailable.",
                    s503="A backend cannot be reached, no signing key is active, or too many "
                    "password checks are queued: temporarily_unavailable.",
                ),
            },
        )
    )
}
"""The token endpoint in the document: a raw ASGI route, which Litestar cannot describe."""
