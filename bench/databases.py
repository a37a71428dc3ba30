"""The bench's Postgres databases and Redis keys: made for one bench, removed after it."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Iterator
from typing import TypeVar

import asyncpg
import redis

from bench.settings import DATABASE_URL, REDIS_URL

T = TypeVar("T")


def with_database(url: str, name: str) -> str:
    return url.rsplit("/", 1)[0] + "/" + name


def pg_dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


async def pg(url: str, *statements: str) -> None:
    connection = await asyncpg.connect(pg_dsn(url))
    try:
        for statement in statements:
            await connection.execute(statement)
    finally:
        await connection.close()


def create_databases(*names: str) -> None:
    asyncio.run(pg(DATABASE_URL, *(f'CREATE DATABASE "{name}"' for name in names)))


def drop_databases(*names: str) -> None:
    asyncio.run(
        pg(DATABASE_URL, *(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)' for name in names))
    )


def drop_redis_keys(prefix: str) -> None:
    client = redis.Redis.from_url(REDIS_URL)
    try:
        for keys in _chunks(client.scan_iter(match=f"{prefix}*", count=10_000), 10_000):
            client.delete(*keys)
    finally:
        client.close()


def _chunks(items: Iterable[T], size: int) -> Iterator[list[T]]:
    chunk: list[T] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
