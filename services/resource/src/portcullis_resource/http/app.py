"""The posts service's Litestar application, protected by the Portcullis guard."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from litestar import Litestar

from portcullis_resource.http.controllers.health import HealthController
from portcullis_resource.http.controllers.me import MeController
from portcullis_resource.http.controllers.playground import PlaygroundController
from portcullis_resource.http.controllers.posts import PostController
from portcullis_resource.http.controllers.proxy import LoginProxyController
from portcullis_resource.http.dependencies import DEPENDENCIES
from portcullis_resource.http.errors import EXCEPTION_HANDLERS
from portcullis_resource.runtime import ResourceRuntime
from portcullis_resource.settings import ResourceSettings, get_settings
from portcullis_shared.logs import logging_config
from portcullis_shared.openapi import API_RESPONSE_HEADERS, openapi_config
from portcullis_shared.plugin import PortcullisGuard
from portcullis_shared.request import PortcullisRequest


def create_app(
    settings: ResourceSettings | None = None, guard: PortcullisGuard | None = None
) -> Litestar:
    """Build the posts service; `guard` defaults to one built from the settings."""
    resolved = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        runtime = ResourceRuntime.create(resolved)
        app.state.runtime = runtime
        try:
            yield
        finally:
            await runtime.close()

    return Litestar(
        route_handlers=[
            PostController,
            MeController,
            HealthController,
            LoginProxyController,
            *([PlaygroundController] if resolved.playground else []),
        ],
        plugins=[guard or PortcullisGuard(resolved.guard)],
        dependencies=DEPENDENCIES,
        exception_handlers=EXCEPTION_HANDLERS,
        request_class=PortcullisRequest,
        lifespan=[lifespan],
        logging_config=logging_config(),
        openapi_config=openapi_config("Portcullis posts"),
        response_headers=API_RESPONSE_HEADERS,
        debug=False,
    )
