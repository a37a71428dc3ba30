"""The address a request comes from, as every limit and throttle counts it."""

from __future__ import annotations

from typing import Any

from litestar.connection import ASGIConnection

from portcullis_auth.runtime import AuthRuntime
from portcullis_shared.client_ip import client_ip


def caller_address(runtime: AuthRuntime, request: ASGIConnection[Any, Any, Any, Any]) -> str:
    """The caller's address, through the trusted proxies only: what its attempts at
    passwords and user codes, and its request budgets, are counted by."""
    return client_ip(
        request.client.host if request.client else None,
        ", ".join(request.headers.getall("x-forwarded-for", [])) or None,
        runtime.settings.server.trusted_proxies,
    )
