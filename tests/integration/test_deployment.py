"""What the images run, run here: `deploy/install.sh` into clean virtual environments,
then each image's entrypoint from its own environment against Postgres and Redis.

No Docker engine is needed: the images' build runs the same script, and their
entrypoint is the same `portcullis` command.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import redis.asyncio as aioredis

from tests.auth.conftest import auth_environ
from tests.infrastructure import create_database, drop_database, with_database
from tests.integration.processes import Cli, ServiceProcess, free_port

ROOT = Path(__file__).resolve().parents[2]
INSTALL_TIMEOUT = 900


@dataclass(frozen=True)
class Installed:
    auth: Path
    resource: Path


def install(service: str, target: Path) -> Path:
    completed = subprocess.run(
        ["bash", str(ROOT / "deploy" / "install.sh"), service, str(target)],
        capture_output=True,
        text=True,
        timeout=INSTALL_TIMEOUT,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    return target


def packages(venv: Path) -> set[str]:
    listed = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "list", "--format=freeze"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return {line.split("==")[0].lower() for line in listed.splitlines() if "==" in line}


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    folder = tmp_path_factory.mktemp("images")
    return Installed(install("auth", folder / "auth"), install("resource", folder / "resource"))


def test_each_image_holds_its_own_service_and_nothing_of_the_other(installed: Installed) -> None:
    auth, resource = packages(installed.auth), packages(installed.resource)
    assert {"portcullis-auth", "portcullis-shared", "portcullis-cli"} <= auth
    assert "portcullis-resource" not in auth
    assert {"portcullis-resource", "portcullis-shared", "portcullis-cli"} <= resource
    # The posts image carries none of what only the auth service needs.
    assert not {"portcullis-auth", "pwdlib", "argon2-cffi"} & resource
    for venv in (installed.auth, installed.resource):
        # Development tools stay out of the images.
        assert not {"pytest", "mypy", "ruff", "playwright"} & packages(venv)


def test_migrate_stops_with_a_message_naming_a_missing_secret_key(
    installed: Installed, tmp_path: Path
) -> None:
    environ = {
        **{k: v for k, v in os.environ.items() if not k.startswith("PORTCULLIS_")},
        "PORTCULLIS_ISSUER": "http://127.0.0.1:8000",
        "PORTCULLIS_DATABASE_URL": "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres",
        "PORTCULLIS_SECRET_KEY": "",
    }
    completed = subprocess.run(
        [str(installed.auth / "bin" / "portcullis"), "install"],
        env=environ,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode != 0
    assert "PORTCULLIS_SECRET_KEY" in completed.stderr
    assert "Traceback" not in completed.stderr


@pytest.fixture
async def databases(
    postgres_url: str,
    service_postgres_url: str,
    template_database: str,
    resource_template_database: str,
) -> AsyncIterator[tuple[str, str]]:
    """Empty databases, as a fresh deployment has: the images migrate them."""
    suffix = secrets.token_hex(5)
    auth_db, posts_db = f"portcullis_ia_{suffix}", f"portcullis_ip_{suffix}"
    await create_database(postgres_url, auth_db)
    await create_database(postgres_url, posts_db)
    try:
        yield (
            with_database(service_postgres_url, auth_db),
            with_database(service_postgres_url, posts_db),
        )
    finally:
        await drop_database(postgres_url, auth_db)
        await drop_database(postgres_url, posts_db)


async def test_the_entrypoints_serve_a_token_end_to_end(
    installed: Installed, databases: tuple[str, str], redis_url: str, tmp_path: Path
) -> None:
    auth_db, posts_db = databases
    prefix = f"portcullis-test:{uuid.uuid4().hex}:"
    auth_port, posts_port = free_port(), free_port()
    auth_url, posts_url = f"http://127.0.0.1:{auth_port}", f"http://127.0.0.1:{posts_port}"
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("PORTCULLIS_")}
    # Chosen beforehand, as .env or the Secret holds them, and given to both `migrate`
    # and the posts service: nothing is copied from install's output.
    password_client = {
        "PORTCULLIS_PASSWORD_CLIENT_ID": f"client_{secrets.token_hex(10)}",
        "PORTCULLIS_PASSWORD_CLIENT_SECRET": secrets.token_urlsafe(32),
    }
    auth_env = {
        **inherited,
        **auth_environ(auth_db, redis_url, prefix),
        "PORTCULLIS_ISSUER": auth_url,
        "PORTCULLIS_PORT": str(auth_port),
        "PORTCULLIS_TRUSTED_PROXIES": "127.0.0.1/32",
    }
    cli = Cli(
        {**auth_env, **password_client},
        tmp_path,
        executable=str(installed.auth / "bin" / "portcullis"),
    )
    # What the `migrate` service and the Job run, and run again on the next release.
    for _ in range(2):
        shown = cli.run("install")
        assert password_client["PORTCULLIS_PASSWORD_CLIENT_SECRET"] not in shown.stdout
        assert password_client["PORTCULLIS_PASSWORD_CLIENT_SECRET"] not in shown.stderr
        assert "shown once" not in shown.stdout
    password = secrets.token_urlsafe(16)
    cli.json("user", "create", "ada@example.com", "--password-stdin", stdin=password + "\n")
    posts_env = {
        **inherited,
        "PORTCULLIS_ISSUER": auth_url,
        "PORTCULLIS_AUDIENCE": "posts",
        "PORTCULLIS_JWKS_URL": f"{auth_url}/.well-known/jwks.json",
        "PORTCULLIS_AUTH_URL": auth_url,
        "PORTCULLIS_DATABASE_URL": posts_db,
        "PORTCULLIS_REDIS_URL": redis_url,
        "PORTCULLIS_REDIS_PREFIX": prefix,
        "PORTCULLIS_PORT": str(posts_port),
        **password_client,
    }
    migrated = Cli(posts_env, tmp_path, executable=str(installed.resource / "bin" / "portcullis"))
    migrated.run("migrate-resource")  # what the posts migrate Job runs
    auth = ServiceProcess(
        [str(installed.auth / "bin" / "portcullis"), "serve", "auth"],
        base_url=auth_url,
        environ=auth_env,
        cwd=tmp_path,
        log_path=tmp_path / "auth.log",
    )
    posts = ServiceProcess(
        [str(installed.resource / "bin" / "portcullis"), "serve", "resource", "--no-migrate"],
        base_url=posts_url,
        environ=posts_env,
        cwd=tmp_path,
        log_path=tmp_path / "posts.log",
    )
    try:
        auth.start()
        posts.start()
        async with httpx.AsyncClient(base_url=posts_url, timeout=30) as http:
            login = await http.post(
                "/api/oauth/password/token",
                json={"username": "ada@example.com", "password": password, "scope": "read-posts"},
            )
            assert login.status_code == 200, login.text
            listed = await http.get(
                "/api/posts", headers={"Authorization": f"Bearer {login.json()['access_token']}"}
            )
        assert listed.status_code == 200, listed.text
    finally:
        posts.stop()
        auth.stop()
        client = aioredis.Redis.from_url(redis_url)
        keys = [key async for key in client.scan_iter(match=f"{prefix}*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()
