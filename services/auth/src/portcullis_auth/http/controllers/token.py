"""POST /oauth/token (RFC 6749 §3.2).

The busiest route, so it is a plain ASGI handler: it reads the form and writes
the JSON answer itself, skipping Litestar's parameter parsing and response
building (a fifth of a token's CPU time). Failures are raised as everywhere
else and answered by the app's exception handlers (`http/errors.py`).
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager, nullcontext

import msgspec
from litestar import Litestar, asgi
from litestar.exceptions import HTTPException, MethodNotAllowedException
from litestar.types import HTTPScope, Receive, Send

from portcullis_auth.db.direct import DirectConnection
from portcullis_auth.http.errors import NO_STORE
from portcullis_auth.http.publishing import publish_quietly
from portcullis_auth.oauth2.errors import OAuth2Error, TemporarilyUnavailableError
from portcullis_auth.oauth2.grants.base import GrantContext
from portcullis_auth.oauth2.request import TokenRequest, parse_form
from portcullis_auth.oauth2.token_endpoint import handle_token_request
from portcullis_auth.repositories.direct_tokens import DirectTokenStatements
from portcullis_auth.runtime import AuthRuntime, runtime_of
from portcullis_auth.services.clients import ClientService
from portcullis_auth.services.tokens import ClientChangedError, TokenResponse, TokenService
from portcullis_auth.services.users import UserService
from portcullis_shared.client_ip import client_ip

MAX_TOKEN_REQUEST_BYTES = 16 * 1024
"""A token request is a handful of short parameters."""

CLIENT_READS = 2
"""Attempts at a token request whose client's row changes under it: the first may
use a cached copy, the second reads the row afresh."""

_RESPONSE_HEADERS = [
    (b"content-type", b"application/json"),
    *((name.lower().encode(), value.encode()) for name, value in NO_STORE.items()),
]


@asgi("/oauth/token", copy_scope=False)  # mounts nothing
async def token_endpoint(scope: HTTPScope, receive: Receive, send: Send) -> None:
    if scope["method"] != "POST":
        raise MethodNotAllowedException(
            "the token endpoint accepts POST only", headers={"Allow": "POST"}
        )
    runtime = runtime_of(Litestar.from_scope(scope).state)
    headers = _headers(scope)
    body = await _read_body(receive, headers.get(b"content-length"))
    peer = scope.get("client")
    forwarded_for = headers.get(b"x-forwarded-for")
    authorization = headers.get(b"authorization")
    content_type = headers.get(b"content-type")
    token_request = TokenRequest(
        form=parse_form(body, None if content_type is None else content_type.decode("latin-1")),
        authorization=None if authorization is None else authorization.decode("latin-1"),
        client_ip=client_ip(
            peer[0] if peer else None,
            None if forwarded_for is None else forwarded_for.decode("latin-1"),
            runtime.settings.server.trusted_proxies,
        ),
    )
    result = await issue(runtime, token_request)
    body = msgspec.json.encode(result.to_dict())
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [*_RESPONSE_HEADERS, (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def issue(runtime: AuthRuntime, token_request: TokenRequest) -> TokenResponse:
    """Run the request's grant: a token response, committed, or an OAuth2Error."""
    for _ in range(CLIENT_READS):
        async with (
            runtime.request_sessions() as session,
            _direct_connection(runtime) as direct,
        ):
            context = GrantContext(
                tokens=TokenService(
                    session,
                    runtime.settings.tokens,
                    runtime.keyring,
                    runtime.access_token_recorder,
                    None if direct is None else DirectTokenStatements(direct),
                ),
                users=UserService(session, runtime.hasher),
                throttle=runtime.throttle,
                scopes=runtime.settings.scopes,
                settings=runtime.settings.tokens,
            )
            try:
                result = await handle_token_request(
                    token_request, ClientService(session), context, cache=runtime.clients
                )
            except ClientChangedError as changed:
                # Nothing was recorded (rolled back with the session, or never written);
                # read the client afresh and start over.
                runtime.clients.forget(changed.client_id)
                continue
            except OAuth2Error as error:
                if error.keep_changes:
                    await session.commit()
                    await publish_quietly(runtime, context.tokens.revocations.recorded)
                raise
            # Committed before answering: a token is only handed out once it is recorded.
            if session.in_transaction():
                await session.commit()
            return result
    raise TemporarilyUnavailableError()  # the client keeps changing under us


def _direct_connection(
    runtime: AuthRuntime,
) -> AbstractAsyncContextManager[DirectConnection | None]:
    """Postgres: one connection for the request's direct statements (a refresh's find
    and rotation), taken only if it makes one."""
    database = runtime.direct_postgres
    return nullcontext() if database is None else database.connection()


def _headers(scope: HTTPScope) -> dict[bytes, bytes]:
    """The request's headers by lower-case name; the first of a repeated one."""
    headers: dict[bytes, bytes] = {}
    for name, value in scope["headers"]:
        headers.setdefault(name, value)
    return headers


async def _read_body(receive: Receive, content_length: bytes | None) -> bytes:
    """The whole body, refused (413) past MAX_TOKEN_REQUEST_BYTES whether or not it
    announced its length."""
    if (
        content_length
        and content_length.isdigit()
        and int(content_length) > MAX_TOKEN_REQUEST_BYTES
    ):
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


def _too_large() -> HTTPException:
    return HTTPException(status_code=413, detail="the request body is too large")
