"""Request ids: one id per request, on its answer and on every log line it causes.

A caller (a load balancer, the posts service's login proxy) may name its
request with `X-Request-ID`, so that one id follows it from service to
service. The header is untrusted input that ends up in log lines and response
headers: it is kept only when it is 1 to 64 letters, digits, `.`, `_` or `-`
(a UUID, a hex or base64url id all fit), and replaced by a fresh id otherwise.
Nothing else can reach a log line through it: no spaces, quotes, `=` or line
breaks that could forge a field or a line. Missing, it is made here: 32 random
hex digits.

`RequestIdMiddleware` decides the id as a request enters its route and holds it
in a context variable for its log lines (`current_request_id`). The answer
gets its `X-Request-ID` from `send_request_id`, a before-send hook of the whole
app: answers made outside the route's middleware (a 401 from the bearer guard,
a 404 for no route) carry it too. Both are plain ASGI callables, about 3 µs a
request together, against some 800 µs for a token request.
"""

from __future__ import annotations

import os
import re
from contextvars import ContextVar
from typing import Any

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

REQUEST_ID_HEADER = "X-Request-ID"
MAX_LENGTH = 64

_HEADER_NAME = REQUEST_ID_HEADER.lower().encode("latin-1")
_WELL_FORMED = re.compile(rb"[A-Za-z0-9._-]{1,%d}" % MAX_LENGTH)
_STATE_KEY = "portcullis.request_id"

_current: ContextVar[str | None] = ContextVar("portcullis_request_id", default=None)


def current_request_id() -> str | None:
    """The id of the request being served by this task, None outside a request."""
    return _current.get()


def new_request_id() -> str:
    return os.urandom(16).hex()


def accepted_request_id(header: bytes | None) -> str:
    """The caller's id when well formed, else a fresh one."""
    if header is not None and _WELL_FORMED.fullmatch(header):
        return header.decode("ascii")
    return new_request_id()


def request_id_of(scope: Scope) -> str:
    """The request's id, decided once per request (from its first `X-Request-ID` line)."""
    state: dict[str, Any] = scope.setdefault("state", {})
    request_id: str | None = state.get(_STATE_KEY)
    if request_id is None:
        header = next((value for name, value in scope["headers"] if name == _HEADER_NAME), None)
        request_id = state[_STATE_KEY] = accepted_request_id(header)
    return request_id


class RequestIdMiddleware:
    """Holds the request's id in `current_request_id` while its route handles it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return
        token = _current.set(request_id_of(scope))
        try:
            await self.app(scope, receive, send)
        finally:
            _current.reset(token)


async def send_request_id(message: Message, scope: Scope) -> None:
    """Before-send hook: every HTTP answer names its request."""
    if message["type"] == "http.response.start":
        header = (_HEADER_NAME, request_id_of(scope).encode("ascii"))
        message["headers"] = [*message.get("headers", ()), header]
