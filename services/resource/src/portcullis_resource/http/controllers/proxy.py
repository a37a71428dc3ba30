"""The first-party login proxy (Passport's "password grant for your own SPA").

The browser posts a username and password here; this service adds the
password client's id and secret from its configuration, forwards the
request to the auth service with the caller's address in `X-Forwarded-For`
(resolved through `PORTCULLIS_TRUSTED_PROXIES`: a forwarding header is believed
only from a proxy listed there), and returns the answer and status unchanged. The secret never reaches the
browser. Refresh, RFC 7009 revocation and the personal access token routes
pass through the same way. Each forwarded request carries this request's
`X-Request-ID`, so that one id names a login in both services' logs.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any
from urllib.parse import parse_qsl

import httpx
import msgspec
from litestar import Controller, Request, Response, delete, get, post
from litestar.openapi.spec import OpenAPIResponse, OpenAPIType, Operation, RequestBody, Schema
from litestar.params import FromPath

from portcullis_resource.runtime import ResourceRuntime
from portcullis_resource.settings import PasswordProxySettings
from portcullis_shared.client_ip import client_ip
from portcullis_shared.dependencies import Injected
from portcullis_shared.openapi import (
    BEARER_ERROR,
    OAUTH2_ERROR,
    TOKEN_RESPONSE,
    answers,
    bearer_security,
    error_responses,
    form_body,
    json_content,
    object_schema,
    text,
)
from portcullis_shared.request import until_disconnected
from portcullis_shared.request_id import REQUEST_ID_HEADER, request_id_of

PROXY_TIMEOUT = 10.0
MAX_BODY_BYTES = 16 * 1024
# What the proxy forwards from the auth service's answer; nothing else.
PASSED_HEADERS = (
    "content-type",
    "cache-control",
    "pragma",
    "retry-after",
    "www-authenticate",
    "ratelimit-limit",
    "ratelimit-remaining",
    "ratelimit-reset",
    "ratelimit-policy",
)


def _fields(required: tuple[str, ...], optional: tuple[str, ...]) -> RequestBody:
    """A body of string fields, as JSON or as a form; other fields are dropped."""
    return form_body(
        object_schema(
            {name: text(name, max_length=4096) for name in required},
            {name: text(name, max_length=4096) for name in optional},
            closed=False,
        ),
        json=True,
    )


TOKEN_ERRORS = error_responses(
    OAUTH2_ERROR,
    400,
    401,
    413,
    429,
    503,
    s400="invalid_request (a field missing or not a string, a body neither JSON nor a "
    "form), or the auth service's invalid_grant, invalid_scope, invalid_target.",
    s401="invalid_client: the auth service refused the proxy's client.",
    s429="Too many failed logins for this user and address: temporarily_unavailable.",
    s503="The auth service cannot be reached, the proxy is not configured, or the auth "
    "service is unavailable: temporarily_unavailable.",
)
TOKEN_ANSWER = {
    "200": OpenAPIResponse(
        description="The auth service's token response, unchanged.",
        content=json_content(TOKEN_RESPONSE),
    )
}
REVOKE_ANSWER = {
    "200": OpenAPIResponse(description="Revoked, or unknown (RFC 7009 §2.2): no body.")
}


def _token_answers(required: tuple[str, ...], optional: tuple[str, ...]) -> type[Operation]:
    """A token route: the auth service's answer to a grant, or the proxy's own refusal."""
    return answers(TOKEN_ANSWER, TOKEN_ERRORS, body=_fields(required, optional))


def _revoke_answers() -> type[Operation]:
    return answers(
        REVOKE_ANSWER,
        TOKEN_ERRORS,
        error_responses(
            OAUTH2_ERROR,
            400,
            s400="invalid_request; unauthorized_client: the token was issued to another client.",
        ),
        body=_fields(("token",), ("token_type_hint",)),
    )


PERSONAL_ACCESS_TOKEN_REQUEST = RequestBody(
    required=True,
    content=json_content(
        object_schema(
            {
                "name": text("What the token is for.", min_length=1, max_length=200),
                "scopes": Schema(
                    type=OpenAPIType.ARRAY,
                    items=text("A scope the caller's token holds.", min_length=1, max_length=100),
                ),
            },
            {"expires_in": Schema(type=OpenAPIType.INTEGER, description="Seconds.")},
        )
    ),
)
"""Passed on as it came to the auth service, which reads exactly these fields."""


def _bearer_answers(
    *statuses: int, no_content: bool = False, body: RequestBody | None = None
) -> type[Operation]:
    """The auth service's answers to a bearer route, passed on. `no_content`: it answers
    204, which the handler cannot declare itself (a 204 handler may return nothing)."""
    done = {"204": OpenAPIResponse(description="Done; no body.")} if no_content else {}
    return answers(
        done,
        error_responses(BEARER_ERROR, 401, 403, 429, 503, *statuses),
        instead_of=["200", "201", "400"] if no_content else [],
        body=body,
    )


class ProxyError(Exception):
    """A request the proxy refuses before forwarding; answered 400."""


RETRY_AFTER = "1"
"""Seconds a caller waits after the proxy's own 503, as after the auth service's."""


def _error(status: int, error: str, description: str) -> Response[dict[str, str]]:
    headers = {"Cache-Control": "no-store"}
    if status == 503:
        headers["Retry-After"] = RETRY_AFTER
    return Response(
        {"error": error, "error_description": description}, status_code=status, headers=headers
    )


async def read_fields(request: Request[Any, Any, Any], allowed: tuple[str, ...]) -> dict[str, str]:
    """A JSON object or a form, with string values only; unknown fields are dropped."""
    body = await request.body()
    media_type = (request.headers.get("content-type") or "").split(";", 1)[0].strip().lower()
    try:
        if media_type == "application/json":
            raw = msgspec.json.decode(body)
        elif media_type == "application/x-www-form-urlencoded":
            raw = dict(parse_qsl(body.decode("utf-8"), keep_blank_values=False, errors="strict"))
        else:
            raise ProxyError("send JSON or a form")
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        raise ProxyError("the body is not valid JSON or form data") from None
    if not isinstance(raw, dict):
        raise ProxyError("the body must be an object")
    fields: dict[str, str] = {}
    for name in allowed:
        value = raw.get(name)
        if value is None:
            continue
        if not isinstance(value, str) or len(value) > 4096:
            raise ProxyError(f"{name} must be a string")
        fields[name] = value
    return fields


class LoginProxyController(Controller):
    path = "/api/oauth"
    opt = {"exclude_from_auth": True}  # noqa: RUF012 - Litestar reads it as a class attribute

    @post(
        "/password/token",
        request_max_body_size=MAX_BODY_BYTES,
        status_code=200,
        operation_class=_token_answers(("username", "password"), ("scope",)),
    )
    async def password_token(
        self, request: Request[Any, Any, Any], runtime: Injected[ResourceRuntime]
    ) -> Response[Any]:
        return await self._forward_form(
            request,
            runtime,
            "/oauth/token",
            ("username", "password", "scope"),
            {"grant_type": "password"},
            required=("username", "password"),
        )

    @post(
        "/refresh",
        request_max_body_size=MAX_BODY_BYTES,
        status_code=200,
        operation_class=_token_answers(("refresh_token",), ("scope",)),
    )
    async def refresh(
        self, request: Request[Any, Any, Any], runtime: Injected[ResourceRuntime]
    ) -> Response[Any]:
        return await self._forward_form(
            request,
            runtime,
            "/oauth/token",
            ("refresh_token", "scope"),
            {"grant_type": "refresh_token"},
            required=("refresh_token",),
        )

    @post(
        "/revoke",
        request_max_body_size=MAX_BODY_BYTES,
        status_code=200,
        operation_class=_revoke_answers(),
    )
    async def revoke(
        self, request: Request[Any, Any, Any], runtime: Injected[ResourceRuntime]
    ) -> Response[Any]:
        return await self._forward_form(
            request, runtime, "/oauth/revoke", ("token", "token_type_hint"), {}, required=("token",)
        )

    @post(
        "/code/token",
        request_max_body_size=MAX_BODY_BYTES,
        status_code=200,
        operation_class=_token_answers(("code",), ("code_verifier", "redirect_uri")),
    )
    async def code_token(
        self, request: Request[Any, Any, Any], runtime: Injected[ResourceRuntime]
    ) -> Response[Any]:
        """The playground's authorization code, exchanged as its public client (PKCE)."""
        return await self._forward_public(
            request,
            runtime,
            "/oauth/token",
            ("code", "code_verifier", "redirect_uri"),
            {"grant_type": "authorization_code"},
        )

    @post(
        "/code/refresh",
        request_max_body_size=MAX_BODY_BYTES,
        status_code=200,
        operation_class=_token_answers(("refresh_token",), ("scope",)),
    )
    async def code_refresh(
        self, request: Request[Any, Any, Any], runtime: Injected[ResourceRuntime]
    ) -> Response[Any]:
        return await self._forward_public(
            request,
            runtime,
            "/oauth/token",
            ("refresh_token", "scope"),
            {"grant_type": "refresh_token"},
        )

    @post(
        "/code/revoke",
        request_max_body_size=MAX_BODY_BYTES,
        status_code=200,
        operation_class=_revoke_answers(),
    )
    async def code_revoke(
        self, request: Request[Any, Any, Any], runtime: Injected[ResourceRuntime]
    ) -> Response[Any]:
        return await self._forward_public(
            request, runtime, "/oauth/revoke", ("token", "token_type_hint"), {}
        )

    @get(
        "/personal-access-tokens",
        security=bearer_security(),
        operation_class=_bearer_answers(),
    )
    async def list_personal_access_tokens(
        self, request: Request[Any, Any, Any], runtime: Injected[ResourceRuntime]
    ) -> Response[Any]:
        return await self._forward_bearer(request, runtime, "GET", "/oauth/personal-access-tokens")

    @post(
        "/personal-access-tokens",
        request_max_body_size=MAX_BODY_BYTES,
        security=bearer_security(),
        operation_class=_bearer_answers(400, 413, body=PERSONAL_ACCESS_TOKEN_REQUEST),
    )
    async def create_personal_access_token(
        self, request: Request[Any, Any, Any], runtime: Injected[ResourceRuntime]
    ) -> Response[Any]:
        return await self._forward_bearer(request, runtime, "POST", "/oauth/personal-access-tokens")

    @delete(
        "/personal-access-tokens/{token_id:uuid}",
        status_code=200,  # a 204 handler may return no body; the upstream answer sets it
        security=bearer_security(),
        operation_class=_bearer_answers(404, no_content=True),
    )
    async def revoke_personal_access_token(
        self,
        request: Request[Any, Any, Any],
        runtime: Injected[ResourceRuntime],
        token_id: FromPath[uuid.UUID],
    ) -> Response[Any]:
        return await self._forward_bearer(
            request, runtime, "DELETE", f"/oauth/personal-access-tokens/{token_id}"
        )

    @post(
        "/logout",
        status_code=200,  # as above
        security=bearer_security(),
        operation_class=_bearer_answers(no_content=True),
    )
    async def logout(
        self, request: Request[Any, Any, Any], runtime: Injected[ResourceRuntime]
    ) -> Response[Any]:
        return await self._forward_bearer(request, runtime, "POST", "/oauth/logout")

    async def _forward_form(
        self,
        request: Request[Any, Any, Any],
        runtime: Injected[ResourceRuntime],
        path: str,
        allowed: tuple[str, ...],
        fixed: dict[str, str],
        *,
        required: tuple[str, ...],
    ) -> Response[Any]:
        proxy = runtime.settings.proxy
        if proxy is None:
            return _error(503, "temporarily_unavailable", "the login proxy is not configured")
        try:
            fields = await read_fields(request, allowed)
        except ProxyError as exc:
            return _error(400, "invalid_request", str(exc))
        missing = [name for name in required if not fields.get(name)]
        if missing:
            return _error(400, "invalid_request", f"missing field: {', '.join(missing)}")
        return await self._send(
            runtime,
            proxy,
            "POST",
            path,
            request,
            data={**fields, **fixed},
            auth=(proxy.client_id, proxy.client_secret),
        )

    async def _forward_public(
        self,
        request: Request[Any, Any, Any],
        runtime: ResourceRuntime,
        path: str,
        allowed: tuple[str, ...],
        fixed: dict[str, str],
    ) -> Response[Any]:
        """As the playground's public client: its id, no secret (it has none)."""
        proxy, client_id = runtime.settings.proxy, runtime.settings.playground_client_id
        if proxy is None or client_id is None:
            return _error(503, "temporarily_unavailable", "the playground client is not configured")
        try:
            fields = await read_fields(request, allowed)
        except ProxyError as exc:
            return _error(400, "invalid_request", str(exc))
        missing = [name for name in allowed[:1] if not fields.get(name)]
        if missing:
            return _error(400, "invalid_request", f"missing field: {', '.join(missing)}")
        return await self._send(
            runtime, proxy, "POST", path, request, data={**fields, **fixed, "client_id": client_id}
        )

    async def _forward_bearer(
        self,
        request: Request[Any, Any, Any],
        runtime: Injected[ResourceRuntime],
        method: str,
        path: str,
    ) -> Response[Any]:
        proxy = runtime.settings.proxy
        if proxy is None:
            return _error(503, "temporarily_unavailable", "the login proxy is not configured")
        headers = {}
        authorization = request.headers.get("authorization")
        if authorization:
            headers["Authorization"] = authorization
        content = await request.body() if method == "POST" else None
        if content:
            headers["Content-Type"] = request.headers.get("content-type") or "application/json"
        return await self._send(
            runtime, proxy, method, path, request, content=content, headers=headers
        )

    async def _send(
        self,
        runtime: Injected[ResourceRuntime],
        proxy: PasswordProxySettings,
        method: str,
        path: str,
        request: Request[Any, Any, Any],
        *,
        data: dict[str, str] | None = None,
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
    ) -> Response[Any]:
        # The caller's address as our trusted proxies vouch for it, never as it claims: the
        # auth service throttles password guesses by it.
        caller = client_ip(
            request.client.host if request.client else None,
            ", ".join(request.headers.getall("x-forwarded-for", [])) or None,
            runtime.settings.trusted_proxies,
        )
        forwarded = {
            **(headers or {}),
            "X-Forwarded-For": caller,
            REQUEST_ID_HEADER: request_id_of(request.scope),
        }
        upstream = asyncio.ensure_future(
            runtime.http_client.request(
                method,
                proxy.auth_url + path,
                data=data,
                content=content,
                headers=forwarded,
                auth=auth,
                timeout=PROXY_TIMEOUT,
            )
        )
        gone = asyncio.ensure_future(until_disconnected(request.receive))
        try:
            await asyncio.wait((upstream, gone), return_when=asyncio.FIRST_COMPLETED)
        finally:
            gone.cancel()
        if not upstream.done():
            # The caller hung up: so does the proxy, and the auth service drops the
            # password check still waiting for its turn.
            upstream.cancel()
            return _error(400, "invalid_request", "the client disconnected")
        try:
            answer = upstream.result()
        except httpx.HTTPError:
            return _error(503, "temporarily_unavailable", "the auth service cannot be reached")
        passed = {name: answer.headers[name] for name in PASSED_HEADERS if name in answer.headers}
        return Response(answer.content, status_code=answer.status_code, headers=passed)
