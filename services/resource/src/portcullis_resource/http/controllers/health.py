"""Liveness and readiness (no token needed)."""

from __future__ import annotations

import asyncio

from litestar import Controller, Response, get
from sqlalchemy import text

from portcullis_resource.runtime import ResourceRuntime
from portcullis_shared.dependencies import Injected


class HealthController(Controller):
    @get("/healthz")
    async def healthz(self) -> dict[str, str]:
        return {"status": "ok"}

    @get("/readyz")
    async def readyz(self, runtime: Injected[ResourceRuntime]) -> Response[dict[str, str]]:
        try:
            async with asyncio.timeout(2), runtime.engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
            database = "ok"
        except Exception:  # noqa: BLE001 - any failure means not ready
            database = "unavailable"
        ready = database == "ok"
        return Response(
            {"status": "ok" if ready else "unavailable", "database": database},
            status_code=200 if ready else 503,
        )
