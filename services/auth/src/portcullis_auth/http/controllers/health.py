"""Liveness and readiness."""

from __future__ import annotations

import asyncio

from litestar import Controller, MediaType, Response, get
from sqlalchemy import text

from portcullis_auth.runtime import AuthRuntime
from portcullis_shared.dependencies import Injected
from portcullis_shared.openapi import READINESS_ANSWERS

CHECK_TIMEOUT = 2.0


class HealthController(Controller):
    @get("/healthz", media_type=MediaType.JSON)
    async def healthz(self) -> dict[str, str]:
        return {"status": "ok"}

    @get("/readyz", media_type=MediaType.JSON, operation_class=READINESS_ANSWERS)
    async def readyz(self, runtime: Injected[AuthRuntime]) -> Response[dict[str, str]]:
        checks = {"database": await _check_database(runtime)}
        if runtime.redis is not None:
            checks["redis"] = await _check_redis(runtime)
        ready = all(value == "ok" for value in checks.values())
        return Response(
            {"status": "ok" if ready else "unavailable", **checks},
            status_code=200 if ready else 503,
            headers={"Cache-Control": "no-store"},
        )


async def _check_database(runtime: Injected[AuthRuntime]) -> str:
    try:
        async with asyncio.timeout(CHECK_TIMEOUT), runtime.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    except Exception:  # noqa: BLE001 - any failure means not ready
        return "unavailable"
    return "ok"


async def _check_redis(runtime: Injected[AuthRuntime]) -> str:
    assert runtime.redis is not None
    try:
        async with asyncio.timeout(CHECK_TIMEOUT):
            await runtime.redis.ping()
    except Exception:  # noqa: BLE001 - any failure means not ready
        return "unavailable"
    return "ok"
