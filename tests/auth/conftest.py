"""Auth-service fixtures: settings, a running app, and real users and clients."""

from __future__ import annotations

import base64
import os
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TypedDict, TypeVar, Unpack
from urllib.parse import quote_plus

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy.ext.asyncio import AsyncSession

from portcullis_auth.http.app import create_app
from portcullis_auth.keys.sealing import KeySealer
from portcullis_auth.keys.service import SigningKeyService
from portcullis_auth.security.passwords import PasswordHasher
from portcullis_auth.services.clients import ClientService, ClientSpec
from portcullis_auth.services.users import UserService
from portcullis_auth.settings import AuthSettings, get_settings
from portcullis_shared.sql import create_engine, create_sessionmaker

ISSUER = "http://auth.test"
USER_PASSWORD = "correct horse battery staple"


def auth_environ(
    database_url: str, redis_url: str, redis_prefix: str, **extra: str
) -> dict[str, str]:
    return {
        "PORTCULLIS_ISSUER": ISSUER,
        "PORTCULLIS_DATABASE_URL": database_url,
        "PORTCULLIS_REDIS_URL": redis_url,
        "PORTCULLIS_REDIS_PREFIX": redis_prefix,
        "PORTCULLIS_SECRET_KEY": secrets.token_hex(32),
        **{f"PORTCULLIS_{name.upper()}": value for name, value in extra.items()},
    }


@pytest.fixture
def settings_overrides() -> dict[str, str]:
    """Override in a test module to change settings, e.g. {"signing_alg": "ES256"}."""
    return {}


@pytest.fixture
def settings(
    database_url: str, redis_url: str, redis_prefix: str, settings_overrides: dict[str, str]
) -> AuthSettings:
    return AuthSettings.from_env(
        auth_environ(database_url, redis_url, redis_prefix, **settings_overrides)
    )


T = TypeVar("T")

TEST_CLIENT = ClientSpec(
    name="test client",
    grant_types=("password", "client_credentials", "refresh_token"),
    scopes=("read-posts", "write-posts", "admin"),
    default_scopes=("read-posts",),
    audiences=("posts", "billing"),
)
"""The client `Seed.client` makes unless told otherwise."""


class ClientOptions(TypedDict, total=False):
    """What a test may change of `TEST_CLIENT`: any field of `ClientSpec`."""

    name: str
    grant_types: Sequence[str]
    scopes: Sequence[str]
    default_scopes: Sequence[str]
    audiences: Sequence[str]
    redirect_uris: Sequence[str]
    public: bool
    first_party: bool
    personal_access: bool
    introspect: bool
    rate_limit: str | None


@dataclass
class Seed:
    """Makes real rows through the real services, each in its own commit."""

    settings: AuthSettings

    async def run(self, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
        engine = create_engine(self.settings.database.url)
        try:
            async with create_sessionmaker(engine)() as session:
                result = await work(session)
                await session.commit()
                return result
        finally:
            await engine.dispose()

    async def signing_key(self) -> str:
        async def work(session: AsyncSession) -> str:
            service = SigningKeyService(session, KeySealer(self.settings.secret_key))
            key = await service.generate(self.settings.tokens.signing_algorithm)
            return key.kid

        return await self.run(work)

    async def user(
        self, email: str = "ada@example.com", *, admin: bool = False, password: str = USER_PASSWORD
    ) -> str:
        async def work(session: AsyncSession) -> str:
            user = await UserService(session, PasswordHasher()).create(
                email, password, is_admin=admin
            )
            return str(user.id)

        return await self.run(work)

    async def client(self, **spec: Unpack[ClientOptions]) -> tuple[str, str | None]:
        """A client made from `TEST_CLIENT` with `spec`'s changes; its id and secret."""
        wanted = replace(TEST_CLIENT, **spec)

        async def work(session: AsyncSession) -> tuple[str, str | None]:
            created = await ClientService(session).create(wanted, self.settings.scopes.names)
            return created.client.id, created.secret

        return await self.run(work)


@pytest.fixture
async def seed(settings: AuthSettings) -> Seed:
    seed = Seed(settings)
    await seed.signing_key()
    return seed


@pytest.fixture
async def app(settings: AuthSettings, seed: Seed) -> Litestar:
    return create_app(settings)


@pytest.fixture
async def http(app: Litestar) -> AsyncIterator[AsyncTestClient[Litestar]]:
    async with AsyncTestClient(app=app, base_url=ISSUER) as client:
        yield client


@pytest.fixture
def cli_environ(
    database_url: str,
    redis_url: str,
    redis_prefix: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> Iterator[dict[str, str]]:
    """`portcullis` run in-process: this test's PORTCULLIS_* only, settings read afresh."""
    monkeypatch.chdir(tmp_path)  # no stray .env
    for name in list(os.environ):
        if name.startswith("PORTCULLIS_"):
            monkeypatch.delenv(name)
    environ = auth_environ(database_url, redis_url, redis_prefix)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    yield environ
    get_settings.cache_clear()


def basic_auth(client_id: str, secret: str) -> dict[str, str]:
    """RFC 6749 §2.3.1: form-urlencode each part, then base64."""
    raw = f"{quote_plus(client_id)}:{quote_plus(secret)}".encode()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}
