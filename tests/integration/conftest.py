"""The auth service as a real process: installed and configured through its CLI.

Each test gets its own migrated Postgres database (the `database_url`
fixture), its own Redis key prefix and its own free port. The service is set
up exactly as an operator would set it up: `portcullis install`, `portcullis
user create`, `portcullis client create`, then `portcullis serve auth`.
"""

from __future__ import annotations

import os
import secrets
import subprocess
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from tests.auth.conftest import auth_environ
from tests.integration.pgbouncer import pgbouncer_wanted, running_pgbouncer
from tests.integration.processes import (
    Cli,
    ClientCredentials,
    ServiceProcess,
    executable,
    free_port,
)
from tests.integration.stack import Stack, running_stack

USER_EMAIL = "ada@example.com"
MACHINE_CLIENT_NAME = "machine"


@dataclass
class AuthServer:
    """A running `portcullis serve auth` and what was set up before it started."""

    base_url: str
    cli: Cli
    log_path: Path
    install_output: dict[str, Any]
    password_client: ClientCredentials
    machine_client: ClientCredentials
    user_id: str
    user_password: str
    secret_key: str
    service: ServiceProcess | None = field(default=None, repr=False)

    @property
    def issuer(self) -> str:
        return self.base_url

    @property
    def token_url(self) -> str:
        return f"{self.base_url}/oauth/token"

    @property
    def jwks_url(self) -> str:
        return f"{self.base_url}/.well-known/jwks.json"

    def start(self) -> None:
        assert self.service is None, "already started"
        self.service = ServiceProcess(
            [executable("portcullis"), "serve", "auth"],
            base_url=self.base_url,
            environ=self.cli.environ,
            cwd=self.cli.cwd,
            log_path=self.log_path,
        )
        self.service.start()

    @property
    def process(self) -> subprocess.Popen[bytes] | None:
        return None if self.service is None else self.service.process

    def stop(self) -> None:
        """Terminate the server (kill it when it does not stop); safe to call twice."""
        if self.service is not None:
            self.service.stop()

    def output(self) -> str:
        """Everything the server process wrote to stdout and stderr so far."""
        return self.service.output() if self.service is not None else ""

    def secrets_in_output(self, values: Sequence[str]) -> list[str]:
        """Those of `values` that appear in the server's output, each shortened for display."""
        text = self.output()
        return [f"{value[:6]}…" for value in values if value and value in text]


@pytest.fixture(scope="session")
def service_postgres_url(
    postgres_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """Postgres, or with PORTCULLIS_TEST_PGBOUNCER=1 a PgBouncer in transaction
    pooling mode in front of it, for every service this suite starts."""
    if not pgbouncer_wanted():
        yield postgres_url
        return
    with running_pgbouncer(postgres_url, tmp_path_factory.mktemp("pgbouncer")) as url:
        yield url


@pytest.fixture
async def redis_keys_cleaned(redis_url: str, redis_prefix: str) -> AsyncIterator[None]:
    """Removes whatever the server wrote under this test's Redis prefix."""
    yield
    client = aioredis.Redis.from_url(redis_url)
    try:
        keys = [key async for key in client.scan_iter(match=f"{redis_prefix}*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


@pytest.fixture
def server_environ(database_url: str, redis_url: str, redis_prefix: str) -> dict[str, str]:
    """The process environment of the CLI and the server: PORTCULLIS_* from auth_environ."""
    port = free_port()
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("PORTCULLIS_")}
    return {
        **inherited,
        **auth_environ(database_url, redis_url, redis_prefix),
        "PORTCULLIS_ISSUER": f"http://127.0.0.1:{port}",
        "PORTCULLIS_HOST": "127.0.0.1",
        "PORTCULLIS_PORT": str(port),
        "PYTHONUNBUFFERED": "1",
    }


@pytest.fixture
def cli(server_environ: dict[str, str], tmp_path: Path) -> Cli:
    workdir = tmp_path / "cwd"  # no stray .env is picked up from here
    workdir.mkdir()
    return Cli(server_environ, workdir)


@pytest.fixture
def auth_server(
    cli: Cli, server_environ: dict[str, str], tmp_path: Path, redis_keys_cleaned: None
) -> Iterator[AuthServer]:
    """Installed, with a user and a client-credentials client, and serving."""
    installed = cli.json("install")
    assert set(installed) == {
        "signing_key",
        "password_client",
        "personal_access_client",
        "playground_client",
    }, installed
    password_client = ClientCredentials(
        installed["password_client"]["client_id"], installed["password_client"]["client_secret"]
    )
    assert password_client.client_secret, "install printed no password-client secret"

    password = f"pw-{secrets.token_urlsafe(18)}"
    user = cli.json("user", "create", USER_EMAIL, "--password-stdin", stdin=password + "\n")
    assert user["email"] == USER_EMAIL

    machine = cli.json(
        "client",
        "create",
        MACHINE_CLIENT_NAME,
        "--grant",
        "client_credentials",
        "--scope",
        "read-posts",
    )
    assert machine["client_secret"], "client create printed no secret"

    server = AuthServer(
        base_url=server_environ["PORTCULLIS_ISSUER"],
        cli=cli,
        log_path=tmp_path / "auth-server.log",
        install_output=installed,
        password_client=password_client,
        machine_client=ClientCredentials(machine["client_id"], machine["client_secret"]),
        user_id=user["id"],
        user_password=password,
        secret_key=server_environ["PORTCULLIS_SECRET_KEY"],
    )
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def auth_settings() -> dict[str, str]:
    """More PORTCULLIS_* for the auth service of `stack`: a module overrides it."""
    return {}


@pytest.fixture(scope="module")
def posts_settings() -> dict[str, str]:
    """More PORTCULLIS_* for the posts service of `stack`: a module overrides it."""
    return {}


@pytest.fixture(scope="module")
async def stack(
    postgres_url: str,
    service_postgres_url: str,
    redis_url: str,
    template_database: str,
    resource_template_database: str,
    tmp_path_factory: pytest.TempPathFactory,
    auth_settings: dict[str, str],
    posts_settings: dict[str, str],
) -> AsyncIterator[Stack]:
    """Both services as real processes, shared by the tests of one module."""
    async with running_stack(
        postgres_url,
        service_postgres_url,
        redis_url,
        template_database,
        resource_template_database,
        tmp_path_factory.mktemp("stack"),
        auth_settings=auth_settings,
        posts_settings=posts_settings,
    ) as running:
        yield running
