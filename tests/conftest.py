"""Fixtures every suite shares: real Postgres and Redis, one database per test."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
import redis.asyncio as aioredis

from portcullis_auth.db.migrate import upgrade_async
from portcullis_resource.db.migrate import upgrade_async as upgrade_resource_async
from tests.infrastructure import (
    create_database,
    drop_database,
    postgres_server,
    redis_server,
    with_database,
)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    with postgres_server() as url:
        yield url


@pytest.fixture(scope="session")
def service_postgres_url(postgres_url: str) -> str:
    """The server URL the code under test gets for its databases: Postgres itself
    here; the integration suite may put a pooler in between. Creating, dropping
    and migrating the databases always uses `postgres_url`."""
    return postgres_url


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    with redis_server() as url:
        yield url


@pytest.fixture(scope="session")
async def template_database(postgres_url: str) -> AsyncIterator[str]:
    """A database migrated once; each test's database is a copy of it."""
    name = f"portcullis_tpl_{secrets.token_hex(4)}"
    await create_database(postgres_url, name)
    try:
        await upgrade_async(with_database(postgres_url, name))
        yield name
    finally:
        await drop_database(postgres_url, name)


@pytest.fixture
async def database_url(
    postgres_url: str, service_postgres_url: str, template_database: str
) -> AsyncIterator[str]:
    """A fresh, migrated database of this test's own."""
    name = f"portcullis_t_{secrets.token_hex(6)}"
    await create_database(postgres_url, name, template=template_database)
    try:
        yield with_database(service_postgres_url, name)
    finally:
        await drop_database(postgres_url, name)


@pytest.fixture(scope="session")
async def resource_template_database(postgres_url: str) -> AsyncIterator[str]:
    """The posts service's schema, migrated once."""
    name = f"portcullis_rtpl_{secrets.token_hex(4)}"
    await create_database(postgres_url, name)
    try:
        await upgrade_resource_async(with_database(postgres_url, name))
        yield name
    finally:
        await drop_database(postgres_url, name)


@pytest.fixture
async def resource_database_url(
    postgres_url: str, service_postgres_url: str, resource_template_database: str
) -> AsyncIterator[str]:
    """A fresh posts database of this test's own."""
    name = f"portcullis_r_{secrets.token_hex(6)}"
    await create_database(postgres_url, name, template=resource_template_database)
    try:
        yield with_database(service_postgres_url, name)
    finally:
        await drop_database(postgres_url, name)


@pytest.fixture
def redis_prefix() -> str:
    """Keys of this test's own; nothing it writes is seen by another test."""
    return f"portcullis-test:{uuid.uuid4().hex}:"


@pytest.fixture
async def redis_client(redis_url: str, redis_prefix: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_url)
    try:
        yield client
    finally:
        keys = [key async for key in client.scan_iter(match=f"{redis_prefix}*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()
