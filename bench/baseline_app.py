"""ASGI apps only the benchmark serves.

`baseline` is the posts service with token checking switched off: the same
handlers, guards and database, behind a plugin that trusts every request as a
fixed reader. It never ships: it lives here, outside every package.
`python -m bench.baseline_app PORT` serves it as `portcullis serve resource` serves the
posts service (`portcullis_shared.serving.serve`, the factory `baseline_app`).
"""

from __future__ import annotations

import sys
import uuid
from typing import Any

from litestar import Litestar
from litestar.config.app import AppConfig
from litestar.connection import ASGIConnection
from litestar.di import Provide
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult
from litestar.middleware.base import DefineMiddleware
from litestar.plugins import InitPlugin

from portcullis_resource.http.app import create_app
from portcullis_resource.settings import ResourceSettings
from portcullis_shared.guards import provide_principal
from portcullis_shared.principal import Principal
from portcullis_shared.serving import serve, worker_app

READER = Principal(
    subject=str(uuid.UUID(int=1)),
    client_id="bench",
    scopes=frozenset({"read-posts"}),
    token_id="bench",
    grant_id="bench",
    issued_at=0,
    expires_at=2**31,
)


class TrustEveryone(AbstractAuthenticationMiddleware):
    async def authenticate_request(
        self, connection: ASGIConnection[Any, Any, Any, Any]
    ) -> AuthenticationResult:
        return AuthenticationResult(user=READER, auth=READER)


class NoTokenCheck(InitPlugin):
    """Mounted as the guard is: its middleware and its `principal` dependency."""

    def on_app_init(self, app_config: AppConfig) -> AppConfig:
        app_config.middleware.append(DefineMiddleware(TrustEveryone, exclude=["^/healthz$"]))
        app_config.dependencies = {
            "principal": Provide(provide_principal),
            **app_config.dependencies,
        }
        return app_config


def baseline() -> Litestar:
    settings = ResourceSettings.from_env()
    # `create_app` types its guard as the PortcullisGuard it defaults to, though it only
    # mounts it as a plugin; the bench must not change the service to take this one.
    return create_app(settings, guard=NoTokenCheck())  # type: ignore[arg-type]


def baseline_app() -> Litestar:
    """What a worker serving the baseline runs."""
    return worker_app(baseline())


if __name__ == "__main__":
    serve("bench.baseline_app:baseline_app", host="127.0.0.1", port=int(sys.argv[1]))
