"""Real Postgres and Redis for the tests.

testcontainers when a Docker engine is reachable; otherwise the servers named
by PORTCULLIS_TEST_DATABASE_URL / PORTCULLIS_TEST_REDIS_URL, or the local
defaults. When none answers, the run stops with an error that says so: these
tests never skip.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager

import asyncpg
import redis

DEFAULT_DATABASE_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


class InfrastructureMissingError(RuntimeError):
    """A server the tests need is not reachable; the message says what to start."""


def docker_reachable() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        result = subprocess.run(
            ["docker", "info", "--format", "{{.ServerVersion}}"],
            capture_output=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0


@contextmanager
def postgres_server() -> Iterator[str]:
    """The URL of a Postgres server's maintenance database (asyncpg dialect)."""
    configured = os.environ.get("PORTCULLIS_TEST_DATABASE_URL")
    if configured is None and docker_reachable():
        from testcontainers.postgres import PostgresContainer  # noqa: PLC0415

        with PostgresContainer("postgres:16-alpine", driver="asyncpg") as container:
            yield container.get_connection_url()
        return
    url = configured or DEFAULT_DATABASE_URL
    try:
        asyncio.run(_ping_postgres(url))
    except Exception as exc:
        raise InfrastructureMissingError(
            f"Postgres is not reachable at {url} ({type(exc).__name__}: {exc}). Start it, or set "
            "PORTCULLIS_TEST_DATABASE_URL, or make a Docker engine reachable."
        ) from exc
    yield url


@contextmanager
def redis_server() -> Iterator[str]:
    configured = os.environ.get("PORTCULLIS_TEST_REDIS_URL")
    if configured is None and docker_reachable():
        from testcontainers.redis import RedisContainer  # noqa: PLC0415

        with RedisContainer("redis:7-alpine") as container:
            host = container.get_container_host_ip()
            port = container.get_exposed_port(6379)
            yield f"redis://{host}:{port}/0"
        return
    url = configured or DEFAULT_REDIS_URL
    try:
        redis.Redis.from_url(url, socket_connect_timeout=3).ping()
    except Exception as exc:
        raise InfrastructureMissingError(
            f"Redis is not reachable at {url} ({type(exc).__name__}). Start it, or set "
            "PORTCULLIS_TEST_REDIS_URL, or make a Docker engine reachable."
        ) from exc
    yield url


def asyncpg_dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


def with_database(url: str, name: str) -> str:
    """`url` naming database `name`, its query (driver settings) kept."""
    path, question, query = url.partition("?")
    base, _, _ = path.rpartition("/")
    return f"{base}/{name}{question}{query}"


async def _ping_postgres(url: str) -> None:
    connection = await asyncpg.connect(asyncpg_dsn(url), timeout=5)
    await connection.close()


async def create_database(server_url: str, name: str, template: str | None = None) -> None:
    connection = await asyncpg.connect(asyncpg_dsn(server_url))
    try:
        suffix = f" TEMPLATE {template}" if template else ""
        await connection.execute(f'CREATE DATABASE "{name}"{suffix}')
    finally:
        await connection.close()


async def drop_database(server_url: str, name: str) -> None:
    connection = await asyncpg.connect(asyncpg_dsn(server_url))
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await connection.close()
