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
from portcullis_resource.http.schemas import PostCreate, PostUpdate
from portcullis_resource.runtime import ResourceRuntime
from portcullis_resource.settings import ResourceSettings, get_settings
from portcullis_shared.metrics import ServiceMetrics
from portcullis_shared.observability import Observability
from portcullis_shared.openapi import API_RESPONSE_HEADERS, complete_document, openapi_config
from portcullis_shared.plugin import PortcullisGuard
from portcullis_shared.request import PortcullisRequest
from portcullis_shared.scopes import DEFAULT_SCOPES
from portcullis_shared.serving import worker_app

POST_SCOPES = {name: DEFAULT_SCOPES[name] for name in ("read-posts", "write-posts", "admin")}
"""The scopes the posts routes require, as the document names them."""
SERVICE_NAME = "portcullis-posts"
"""Its traces' `service.name`."""


def create_app(
    settings: ResourceSettings | None = None,
    guard: PortcullisGuard | None = None,
    observability: Observability | None = None,
) -> Litestar:
    """Build the posts service; `guard` defaults to one built from the settings, and
    `observability` to logging, request ids and tracing as the settings say."""
    resolved = settings or get_settings()
    reporting = observability or Observability(resolved.observability, service_name=SERVICE_NAME)

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        runtime = ResourceRuntime.create(resolved, transport=reporting.http_transport())
        app.state.runtime = runtime
        try:
            yield
        finally:
            await runtime.close()

    app = Litestar(
        route_handlers=[
            PostController,
            MeController,
            HealthController,
            LoginProxyController,
            *([PlaygroundController] if resolved.playground else []),
        ],
        plugins=[
            guard or PortcullisGuard(resolved.guard),
            reporting,
            *([ServiceMetrics("posts")] if resolved.metrics else []),
        ],
        dependencies=DEPENDENCIES,
        exception_handlers=EXCEPTION_HANDLERS,
        request_class=PortcullisRequest,
        lifespan=[lifespan],
        openapi_config=openapi_config(
            "Portcullis posts", issuer=resolved.guard.issuer, scopes=POST_SCOPES
        ),
        response_headers=API_RESPONSE_HEADERS,
        debug=False,
    )
    complete_document(app, strict_bodies=[PostCreate, PostUpdate])
    return app


def serving_app() -> Litestar:
    """The app each worker of `portcullis serve resource` runs, from the environment."""
    return worker_app(create_app(get_settings()))
