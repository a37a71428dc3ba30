"""How a command reaches the auth service's database and Redis.

Each command runs its work in one unit of work, as a request does: committed
when the work returns, its revocations then published to Redis (or, when
Redis is unreachable, left for the auth service's sync loop to land).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from functools import wraps
from typing import Any, TypeVar

import click
from redis.asyncio import Redis

from portcullis_auth.db.models import Revocation
from portcullis_auth.revocation.publisher import RevocationNotLandedError, RevocationPublisher
from portcullis_auth.services.clients import ClientConfigError
from portcullis_auth.services.unit_of_work import UnitOfWork
from portcullis_auth.services.users import NoSuchUserError, UserExistsError
from portcullis_auth.settings import AuthSettings
from portcullis_shared.environment import SettingsError, load_dotenv_file
from portcullis_shared.sql import create_engine, create_sessionmaker

T = TypeVar("T")


def load_settings(*, require_redis: bool = False) -> AuthSettings:
    """The auth service's settings. A command needs no Redis (revocations it makes are
    copied there by the running auth service); serving does."""
    load_dotenv_file()
    try:
        return AuthSettings.from_env(require_redis=require_redis)
    except SettingsError as exc:
        raise click.ClickException(f"configuration: {exc}") from None


def run(
    work: Callable[[UnitOfWork, AuthSettings], Awaitable[T]],
    settings: AuthSettings | None = None,
) -> T:
    """Run `work` in one unit of work, committed (and its revocations published)
    when it returns."""
    settings = settings or load_settings()

    async def runner() -> T:
        engine = create_engine(settings.database.url)
        try:
            async with create_sessionmaker(engine)() as session:
                uow = UnitOfWork(session, settings.tokens, _publisher(settings))
                result = await work(uow, settings)
                try:
                    await uow.commit()
                except RevocationNotLandedError:
                    click.echo(
                        "warning: recorded, but Redis is unreachable; the auth service will "
                        "copy it there within a second of Redis coming back",
                        err=True,
                    )
                return result
        finally:
            await engine.dispose()

    return asyncio.run(runner())


def _publisher(settings: AuthSettings) -> Callable[[Sequence[Revocation]], Awaitable[None]]:
    """Copies revocations to Redis now; without Redis (the embedded default) the auth
    service's follower reads them from the database."""

    async def publish(rows: Sequence[Revocation]) -> None:
        if settings.redis.url is None:
            return
        redis = Redis.from_url(settings.redis.url, socket_timeout=2, socket_connect_timeout=2)
        engine = create_engine(settings.database.url)
        try:
            publisher = RevocationPublisher(
                redis, create_sessionmaker(engine), settings.redis.key_prefix
            )
            await publisher.push_within_deadline(rows)
        finally:
            await redis.aclose()
            await engine.dispose()

    return publish


def friendly_errors(command: Callable[..., T]) -> Callable[..., T]:
    """A refused change ends the command with its reason, never a traceback."""

    @wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        try:
            return command(*args, **kwargs)
        except (ClientConfigError, UserExistsError, NoSuchUserError, ValueError) as exc:
            raise click.ClickException(str(exc)) from None

    return wrapper
