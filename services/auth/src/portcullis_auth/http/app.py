"""The auth service's Litestar application."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from litestar import Litestar
from litestar.middleware.base import DefineMiddleware
from redis.exceptions import RedisError

from portcullis_auth.http.controllers.applications import (
    ApplicationsPageController,
    AuthorizedApplicationsController,
)
from portcullis_auth.http.controllers.assets import AssetsController
from portcullis_auth.http.controllers.authorize import AuthorizeController
from portcullis_auth.http.controllers.device import DeviceController
from portcullis_auth.http.controllers.health import HealthController
from portcullis_auth.http.controllers.personal_access import (
    LogoutController,
    PersonalAccessTokenController,
    PersonalAccessTokenCreate,
)
from portcullis_auth.http.controllers.revocation import RevocationController
from portcullis_auth.http.controllers.sign_in import SignInController
from portcullis_auth.http.controllers.token import DOCUMENT as TOKEN_ENDPOINT_DOCUMENT
from portcullis_auth.http.controllers.token import token_endpoint
from portcullis_auth.http.controllers.well_known import WellKnownController
from portcullis_auth.http.cors import PersonalAccessCORS
from portcullis_auth.http.dependencies import DEPENDENCIES
from portcullis_auth.http.errors import EXCEPTION_HANDLERS
from portcullis_auth.runtime import AuthRuntime
from portcullis_auth.settings import AuthSettings, get_settings
from portcullis_shared.metrics import ServiceMetrics
from portcullis_shared.observability import Observability
from portcullis_shared.openapi import API_RESPONSE_HEADERS, complete_document, openapi_config
from portcullis_shared.request import PortcullisRequest
from portcullis_shared.serving import worker_app

logger = logging.getLogger("portcullis.auth")

SHUTDOWN_TIMEOUT = 5.0
SERVICE_NAME = "portcullis-auth"
"""Its traces' `service.name`."""


def create_app(
    settings: AuthSettings | None = None,
    runtime: AuthRuntime | None = None,
    observability: Observability | None = None,
) -> Litestar:
    """Build the auth service; settings default to the environment's.

    `runtime` lets a host process (the embedded default) share the key ring
    and revocation list with a posts service in the same process.
    `observability` defaults to logging, request ids and tracing as the settings say.
    """
    resolved = runtime.settings if runtime is not None else settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        current = runtime or AuthRuntime.create(resolved)
        app.state.runtime = current
        tasks: list[asyncio.Task[None]] = []
        try:
            try:
                await current.check_redis_policy()
            except (RedisError, OSError) as exc:
                # Not fatal: throttling answers 503 and the sync loop rebuilds when it is back.
                logger.warning("Redis unreachable at startup: %s", type(exc).__name__)
            try:
                await current.keyring.reload()
            except Exception as exc:  # noqa: BLE001 - start anyway; /readyz reports it
                logger.warning("signing keys not loaded at startup: %s", type(exc).__name__)
            tasks = [asyncio.create_task(loop) for loop in await current.background_tasks()]
            yield
        finally:
            for task in tasks:
                task.cancel()
            if tasks:
                # A loop stuck on a dead connection must not hold up shutdown.
                await asyncio.wait(tasks, timeout=SHUTDOWN_TIMEOUT)
            try:
                async with asyncio.timeout(SHUTDOWN_TIMEOUT):
                    await current.close()
            except TimeoutError:
                logger.warning("connections not closed within %s s at shutdown", SHUTDOWN_TIMEOUT)

    app = Litestar(
        route_handlers=[
            token_endpoint,
            AuthorizeController,
            DeviceController,
            SignInController,
            ApplicationsPageController,
            AuthorizedApplicationsController,
            AssetsController,
            RevocationController,
            PersonalAccessTokenController,
            LogoutController,
            WellKnownController,
            HealthController,
        ],
        middleware=[DefineMiddleware(PersonalAccessCORS, origins=resolved.server.cors_origins)]
        if resolved.server.cors_origins
        else [],
        plugins=[
            observability or Observability(resolved.observability, service_name=SERVICE_NAME),
            *([ServiceMetrics("auth")] if resolved.server.metrics else []),
        ],
        dependencies=DEPENDENCIES,
        exception_handlers=EXCEPTION_HANDLERS,  # type: ignore[arg-type]
        request_class=PortcullisRequest,
        lifespan=[lifespan],
        openapi_config=openapi_config(
            "Portcullis auth",
            issuer=resolved.tokens.issuer,
            scopes=resolved.scopes.descriptions,
        ),
        response_headers=API_RESPONSE_HEADERS,
        debug=False,
    )
    complete_document(app, TOKEN_ENDPOINT_DOCUMENT, strict_bodies=[PersonalAccessTokenCreate])
    return app


def serving_app() -> Litestar:
    """The app each worker of `portcullis serve auth` runs, from the environment."""
    return worker_app(create_app(get_settings()))
