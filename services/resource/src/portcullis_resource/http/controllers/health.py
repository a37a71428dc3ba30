"""Liveness and readiness (no token needed)."""

from __future__ import annotations

import asyncio
from typing import Any

from litestar import Controller, Request, Response, get
from sqlalchemy import text

from portcullis_resource.runtime import ResourceRuntime
from portcullis_shared.dependencies import Injected
from portcullis_shared.openapi import READINESS_ANSWERS
from portcullis_shared.plugin import PortcullisGuard


class HealthController(Controller):
    @get("/healthz")
    async def healthz(self) -> dict[str, str]:
        return {"status": "ok"}

    @get("/readyz", operation_class=READINESS_ANSWERS)
    async def readyz(
        self, request: Request[Any, Any, Any], runtime: Injected[ResourceRuntime]
    ) -> Response[dict[str, str]]:
        """Ready once the database answers and the auth service's keys are held: a
        replica started before the auth service takes no traffic it would refuse."""
        keys = "ok" if request.app.plugins.get(PortcullisGuard).holds_keys else "unavailable"
        try:
            async with asyncio.timeout(2), runtime.engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
            database = "ok"
        except Exception:  # noqa: BLE001 - any failure means not ready
            database = "unavailable"
        ready = database == "ok" and keys == "ok"
        return Response(
            {"status": "ok" if ready else "unavailable", "database": database, "keys": keys},
            status_code=200 if ready else 503,
        )
