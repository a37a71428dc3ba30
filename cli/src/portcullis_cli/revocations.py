"""`portcullis revocations sync` and `portcullis purge`."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import click
from redis.asyncio import Redis

from portcullis_auth.revocation.publisher import RevocationPublisher
from portcullis_auth.services.purge import purge as purge_rows
from portcullis_cli.runner import load_settings
from portcullis_shared.sql import create_engine, create_sessionmaker


@click.group()
def revocations() -> None:
    """The revocation list in Redis."""


@revocations.command("sync")
@click.option(
    "--rebuild", is_flag=True, help="Rebuild from the database even when Redis looks level."
)
def revocations_sync(rebuild: bool) -> None:
    """Bring the Redis list level with the database now."""
    settings = load_settings()
    redis_url = settings.redis.url
    if redis_url is None:
        raise click.ClickException("PORTCULLIS_REDIS_URL is not set")

    async def sync() -> str:
        redis = Redis.from_url(redis_url, socket_timeout=5)
        engine = create_engine(settings.database.url)
        try:
            publisher = RevocationPublisher(
                redis, create_sessionmaker(engine), settings.redis.key_prefix
            )
            if rebuild:
                await publisher.rebuild()
                return "rebuilt"
            return await publisher.sync()
        finally:
            await redis.aclose()
            await engine.dispose()

    click.echo(f"revocation list: {asyncio.run(sync())}")


@click.command()
@click.option(
    "--retention-days", type=int, default=7, show_default=True, help="Keep ended rows this long."
)
@click.option(
    "--batch",
    type=click.IntRange(min=1),
    default=1000,
    show_default=True,
    help="Rows per transaction.",
)
def purge(retention_days: int, batch: int) -> None:
    """Delete expired and revoked rows older than the retention period."""
    settings = load_settings()

    async def run() -> dict[str, int]:
        engine = create_engine(settings.database.url)
        try:
            return await purge_rows(
                create_sessionmaker(engine), timedelta(days=retention_days), batch
            )
        finally:
            await engine.dispose()

    for table, count in asyncio.run(run()).items():
        click.echo(f"{table}: {count} deleted")
