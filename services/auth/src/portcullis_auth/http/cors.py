"""CORS for first-party pages, on the personal-access-token routes only.

The token, revocation and introspection endpoints never answer a browser's
cross-origin call: a first-party page goes through its own backend for those.
"""

from __future__ import annotations

from collections.abc import Sequence

from litestar.enums import ScopeType
from litestar.types import (
    ASGIApp,
    HTTPResponseBodyEvent,
    HTTPResponseStartEvent,
    Message,
    Receive,
    Scope,
    Send,
)

CORS_PATH_PREFIX = "/oauth/personal-access-tokens"
ALLOWED_METHODS = "GET, POST, DELETE"
ALLOWED_HEADERS = "Authorization, Content-Type"


class PersonalAccessCORS:
    """ASGI middleware answering CORS for `origins` on CORS_PATH_PREFIX, nothing else."""

    def __init__(self, app: ASGIApp, origins: Sequence[str]) -> None:
        self.app = app
        self.origins = frozenset(origins)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        origin = self._origin(scope)
        if origin is None:
            await self.app(scope, receive, send)
            return
        if scope.get("method") == "OPTIONS":
            await self._preflight(origin, send)
            return

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [(b"access-control-allow-origin", origin.encode()), (b"vary", b"Origin")]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_cors)

    def _origin(self, scope: Scope) -> str | None:
        if scope["type"] != ScopeType.HTTP or not scope["path"].startswith(CORS_PATH_PREFIX):
            return None
        for name, value in scope["headers"]:
            if name == b"origin":
                origin = value.decode("latin-1")
                return origin if origin in self.origins else None
        return None

    async def _preflight(self, origin: str, send: Send) -> None:
        headers = [
            (b"access-control-allow-origin", origin.encode()),
            (b"access-control-allow-methods", ALLOWED_METHODS.encode()),
            (b"access-control-allow-headers", ALLOWED_HEADERS.encode()),
            (b"access-control-max-age", b"600"),
            (b"vary", b"Origin"),
        ]
        start: HTTPResponseStartEvent = {
            "type": "http.response.start",
            "status": 204,
            "headers": headers,
        }
        body: HTTPResponseBodyEvent = {
            "type": "http.response.body",
            "body": b"",
            "more_body": False,
        }
        await send(start)
        await send(body)
