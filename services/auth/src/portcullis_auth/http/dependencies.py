"""Dependency providers: the runtime, and the client's address."""

from __future__ import annotations

from litestar import Request
from litestar.datastructures import State

from portcullis_auth.runtime import AuthRuntime
from portcullis_shared.client_ip import client_ip


def request_client_ip(request: Request[object, object, State], runtime: AuthRuntime) -> str:
    peer = request.client.host if request.client else None
    return client_ip(
        peer, request.headers.get("x-forwarded-for"), runtime.settings.server.trusted_proxies
    )
