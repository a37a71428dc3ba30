"""A whole stack: the auth and posts services as real processes, sharing Redis.

One stack per test module (starting processes is the slow part): the auth
service installed through its CLI with an admin, two users and machine
clients; the posts service knowing nothing of it but its JWKS URL and the
shared Redis.
"""

from __future__ import annotations

import os
import secrets
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
import requests

from tests.auth.conftest import auth_environ
from tests.infrastructure import create_database, drop_database, with_database
from tests.integration.processes import (
    Cli,
    ClientCredentials,
    ServiceProcess,
    executable,
    free_port,
)

READ, WRITE, ADMIN = "read-posts", "write-posts", "admin"


@dataclass
class Stack:
    auth_url: str
    posts_url: str
    password_client: ClientCredentials
    machine_client: ClientCredentials
    billing_client: ClientCredentials
    passwords: dict[str, str]
    auth: ServiceProcess
    posts: ServiceProcess
    cli: Cli
    """`portcullis` with the auth service's environment."""
    redis_url: str
    redis_prefix: str
    auth_database_url: str
    """The auth service's database on Postgres itself (never through a pooler), for
    tests that read its rows."""

    def token(self, email: str, scope: str | None = None, **extra: str) -> dict[str, Any]:
        data = {
            "grant_type": "password",
            "username": email,
            "password": self.passwords[email],
            **extra,
        }
        if scope is not None:
            data["scope"] = scope
        response = requests.post(
            f"{self.auth_url}/oauth/token",
            data=data,
            auth=(self.password_client.client_id, self.password_client.client_secret),
            timeout=10,
        )
        assert response.status_code == 200, response.text
        return dict(response.json())

    def client_token(self, client: ClientCredentials, **extra: str) -> dict[str, Any]:
        response = requests.post(
            f"{self.auth_url}/oauth/token",
            data={"grant_type": "client_credentials", **extra},
            auth=(client.client_id, client.client_secret),
            timeout=10,
        )
        assert response.status_code == 200, response.text
        return dict(response.json())

    def posts_call(
        self, method: str, path: str, token: str | None, body: Any = None
    ) -> requests.Response:
        headers = {} if token is None else {"Authorization": f"Bearer {token}"}
        return requests.request(
            method, f"{self.posts_url}{path}", json=body, headers=headers, timeout=10
        )


@asynccontextmanager
async def running_stack(
    postgres_url: str,
    service_postgres_url: str,
    redis_url: str,
    template_database: str,
    resource_template_database: str,
    workdir: Path,
    *,
    auth_settings: dict[str, str] | None = None,
    posts_settings: dict[str, str] | None = None,
    while_auth_down: Callable[[ServiceProcess], None] | None = None,
) -> AsyncIterator[Stack]:
    """Both services up, with users and clients; everything removed afterwards.

    The databases are made on `postgres_url`; the services reach them through
    `service_postgres_url` (the same server, or a pooler in front of it).

    `auth_settings` / `posts_settings`: more PORTCULLIS_* variables for either service.
    `while_auth_down`: start the posts service first and call this with it before the
    auth service starts (as Compose and Kubernetes may start them)."""
    suffix = secrets.token_hex(5)
    auth_db, posts_db = f"portcullis_sa_{suffix}", f"portcullis_sp_{suffix}"
    await create_database(postgres_url, auth_db, template=template_database)
    await create_database(postgres_url, posts_db, template=resource_template_database)
    prefix = f"portcullis-test:{uuid.uuid4().hex}:"
    auth_port, posts_port = free_port(), free_port()
    auth_url, posts_url = f"http://127.0.0.1:{auth_port}", f"http://127.0.0.1:{posts_port}"
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("PORTCULLIS_")}
    auth_env = {
        **inherited,
        **auth_environ(with_database(service_postgres_url, auth_db), redis_url, prefix),
        "PORTCULLIS_ISSUER": auth_url,
        "PORTCULLIS_PORT": str(auth_port),
        **(auth_settings or {}),
    }
    posts_env = {
        **inherited,
        "PORTCULLIS_ISSUER": auth_url,
        "PORTCULLIS_AUDIENCE": "posts",
        "PORTCULLIS_JWKS_URL": f"{auth_url}/.well-known/jwks.json",
        "PORTCULLIS_DATABASE_URL": with_database(service_postgres_url, posts_db),
        "PORTCULLIS_REDIS_URL": redis_url,
        "PORTCULLIS_REDIS_PREFIX": prefix,
        "PORTCULLIS_PORT": str(posts_port),
        **(posts_settings or {}),
    }
    cli = Cli(auth_env, workdir)
    installed = cli.json("install")
    # The posts service's login proxy speaks as the password client.
    posts_env["PORTCULLIS_AUTH_URL"] = auth_url
    posts_env["PORTCULLIS_PASSWORD_CLIENT_ID"] = installed["password_client"]["client_id"]
    posts_env["PORTCULLIS_PASSWORD_CLIENT_SECRET"] = installed["password_client"]["client_secret"]
    passwords = {}
    for email, admin in (
        ("admin@example.com", True),
        ("ada@example.com", False),
        ("bob@example.com", False),
    ):
        passwords[email] = secrets.token_urlsafe(16)
        cli.json(
            "user",
            "create",
            email,
            "--password-stdin",
            *(["--admin"] if admin else []),
            stdin=passwords[email] + "\n",
        )
    machine = cli.json(
        "client",
        "create",
        "machine",
        "--grant",
        "client_credentials",
        "--scope",
        READ,
        "--scope",
        WRITE,
    )
    billing = cli.json(
        "client",
        "create",
        "billing",
        "--grant",
        "client_credentials",
        "--scope",
        READ,
        "--audience",
        "billing",
        "--audience",
        "posts",
    )
    auth = ServiceProcess(
        [executable("portcullis"), "serve", "auth"],
        base_url=auth_url,
        environ=auth_env,
        cwd=workdir,
        log_path=Path(workdir) / "auth.log",
    )
    posts = ServiceProcess(
        [executable("portcullis"), "serve", "resource"],
        base_url=posts_url,
        environ=posts_env,
        cwd=workdir,
        log_path=Path(workdir) / "posts.log",
    )
    try:
        if while_auth_down is None:
            auth.start()
            posts.start()
        else:
            posts.start()
            while_auth_down(posts)
            auth.start()
        yield Stack(
            auth_url=auth_url,
            posts_url=posts_url,
            password_client=ClientCredentials(
                installed["password_client"]["client_id"],
                installed["password_client"]["client_secret"],
            ),
            machine_client=ClientCredentials(machine["client_id"], machine["client_secret"]),
            billing_client=ClientCredentials(billing["client_id"], billing["client_secret"]),
            passwords=passwords,
            auth=auth,
            posts=posts,
            cli=cli,
            redis_url=redis_url,
            redis_prefix=prefix,
            auth_database_url=with_database(postgres_url, auth_db),
        )
    finally:
        posts.stop()
        auth.stop()
        await drop_database(postgres_url, auth_db)
        await drop_database(postgres_url, posts_db)
        client = aioredis.Redis.from_url(redis_url)
        keys = [key async for key in client.scan_iter(match=f"{prefix}*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()
