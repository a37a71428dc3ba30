"""Replicas: two auth and two posts processes on one Postgres and one Redis.

What a cluster relies on: a token from either auth process works at every posts
process; a refresh token rotated at one auth process and replayed at the other
revokes its family; a revocation through either reaches both posts processes
within a second; after `keys rotate` and its activation, both auth processes
sign with the new key and both posts processes accept old and new tokens. The
second process of each service runs two workers (`PORTCULLIS_WORKERS`), as a
container serving with several would.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
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
from tests.integration.test_revocation import refused_within

READ = "read-posts"
JWKS_MAX_AGE = 30
"""The least time a JWKS cache keeps the keys, whatever the max-age says."""
WORKERS = ("1", "2")
"""Worker processes of the first and the second process of each service."""


@dataclass
class Cluster:
    auth_urls: list[str]
    posts_urls: list[str]
    client: ClientCredentials
    password: str
    cli: Cli
    processes: list[ServiceProcess]

    def login(self, auth_url: str) -> dict[str, Any]:
        answer = requests.post(
            f"{auth_url}/oauth/token",
            data={
                "grant_type": "password",
                "username": "ada@example.com",
                "password": self.password,
                "scope": READ,
            },
            auth=(self.client.client_id, self.client.client_secret),
            timeout=10,
        )
        assert answer.status_code == 200, answer.text
        return dict(answer.json())

    def refresh(self, auth_url: str, refresh_token: str) -> requests.Response:
        return requests.post(
            f"{auth_url}/oauth/token",
            data={"grant_type": "refresh_token", "refresh_token": refresh_token},
            auth=(self.client.client_id, self.client.client_secret),
            timeout=10,
        )

    def works_everywhere(self, token: str) -> None:
        for posts_url in self.posts_urls:
            answer = requests.get(
                f"{posts_url}/api/posts", headers={"Authorization": f"Bearer {token}"}, timeout=10
            )
            assert answer.status_code == 200, (posts_url, answer.text)


@pytest.fixture(scope="module")
async def cluster(
    postgres_url: str,
    service_postgres_url: str,
    redis_url: str,
    template_database: str,
    resource_template_database: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Cluster]:
    workdir = tmp_path_factory.mktemp("replicas")
    suffix = secrets.token_hex(5)
    auth_db, posts_db = f"portcullis_ra_{suffix}", f"portcullis_rp_{suffix}"
    await create_database(postgres_url, auth_db, template=template_database)
    await create_database(postgres_url, posts_db, template=resource_template_database)
    prefix = f"portcullis-test:{uuid.uuid4().hex}:"
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("PORTCULLIS_")}
    auth_ports, posts_ports = [free_port(), free_port()], [free_port(), free_port()]
    # One issuer for the cluster, as behind a load balancer: the first process's address.
    issuer = f"http://127.0.0.1:{auth_ports[0]}"
    base = {
        **inherited,
        **auth_environ(with_database(service_postgres_url, auth_db), redis_url, prefix),
        "PORTCULLIS_ISSUER": issuer,
        "PORTCULLIS_JWKS_MAX_AGE": str(JWKS_MAX_AGE),
        "PORTCULLIS_REFRESH_GRACE": "0",
    }
    cli = Cli(base, workdir)
    cli.json("install")
    password = secrets.token_urlsafe(16)
    cli.json("user", "create", "ada@example.com", "--password-stdin", stdin=password + "\n")
    created = cli.json("client", "create", "web", "--grant", "password", "--grant",
                       "refresh_token", "--scope", READ, "--first-party")  # fmt: skip
    processes = [
        ServiceProcess(
            [executable("portcullis"), "serve", "auth"],
            base_url=f"http://127.0.0.1:{port}",
            environ={**base, "PORTCULLIS_PORT": str(port), "PORTCULLIS_WORKERS": workers},
            cwd=workdir,
            log_path=workdir / f"auth-{port}.log",
        )
        for port, workers in zip(auth_ports, WORKERS, strict=True)
    ] + [
        ServiceProcess(
            [executable("portcullis"), "serve", "resource"],
            base_url=f"http://127.0.0.1:{port}",
            environ={
                **inherited,
                "PORTCULLIS_ISSUER": issuer,
                "PORTCULLIS_AUDIENCE": "posts",
                # Each posts process reads the keys from its own auth process.
                "PORTCULLIS_JWKS_URL": f"http://127.0.0.1:{auth_port}/.well-known/jwks.json",
                "PORTCULLIS_DATABASE_URL": with_database(service_postgres_url, posts_db),
                "PORTCULLIS_REDIS_URL": redis_url,
                "PORTCULLIS_REDIS_PREFIX": prefix,
                "PORTCULLIS_PORT": str(port),
                "PORTCULLIS_WORKERS": workers,
            },
            cwd=workdir,
            log_path=workdir / f"posts-{port}.log",
        )
        for port, auth_port, workers in zip(posts_ports, auth_ports, WORKERS, strict=True)
    ]
    try:
        for process in processes:
            process.start()
        yield Cluster(
            auth_urls=[f"http://127.0.0.1:{port}" for port in auth_ports],
            posts_urls=[f"http://127.0.0.1:{port}" for port in posts_ports],
            client=ClientCredentials(created["client_id"], created["client_secret"]),
            password=password,
            cli=cli,
            processes=processes,
        )
    finally:
        for process in processes:
            process.stop()
        await drop_database(postgres_url, auth_db)
        await drop_database(postgres_url, posts_db)
        client = aioredis.Redis.from_url(redis_url)
        keys = [key async for key in client.scan_iter(match=f"{prefix}*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()


def kid_of(token: str) -> str:
    segment = token.split(".", maxsplit=1)[0]
    return str(json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))["kid"])


def refused_by_every_posts_process(cluster: Cluster, token: str, since: float, what: str) -> None:
    for posts_url in cluster.posts_urls:
        stack = _PostsOnly(posts_url)
        refused_within(stack, [token], since, f"{what} at {posts_url}")  # type: ignore[arg-type]


@dataclass
class _PostsOnly:
    """What `refused_within` asks of a stack: one posts process to call."""

    posts_url: str

    def posts_call(self, method: str, path: str, token: str | None) -> requests.Response:
        headers = {} if token is None else {"Authorization": f"Bearer {token}"}
        return requests.request(method, f"{self.posts_url}{path}", headers=headers, timeout=10)


def worker_processes(service: ServiceProcess) -> list[int]:
    assert service.process is not None
    pid = service.process.pid
    return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def test_each_process_runs_the_workers_it_is_given(cluster: Cluster) -> None:
    auth, posts = cluster.processes[:2], cluster.processes[2:]
    for service in (*auth, *posts):
        assert service.environ["PORTCULLIS_WORKERS"] in WORKERS
        assert len(worker_processes(service)) == int(service.environ["PORTCULLIS_WORKERS"])


def test_a_token_from_either_auth_process_works_at_every_posts_process(cluster: Cluster) -> None:
    for auth_url in cluster.auth_urls:
        cluster.works_everywhere(cluster.login(auth_url)["access_token"])


def test_a_refresh_token_replayed_at_the_other_auth_process_revokes_the_family(
    cluster: Cluster,
) -> None:
    first_auth, second_auth = cluster.auth_urls
    issued = cluster.login(first_auth)
    rotated = cluster.refresh(first_auth, issued["refresh_token"])
    assert rotated.status_code == 200, rotated.text
    replayed = cluster.refresh(second_auth, issued["refresh_token"])
    reused_at = time.monotonic()
    assert replayed.json()["error"] == "invalid_grant"
    for token in (issued["access_token"], rotated.json()["access_token"]):
        refused_by_every_posts_process(cluster, token, reused_at, "refresh reuse")
    assert cluster.refresh(first_auth, rotated.json()["refresh_token"]).json()["error"] == (
        "invalid_grant"
    )


@pytest.mark.parametrize("through", [0, 1], ids=["first-auth", "second-auth"])
def test_a_revocation_through_either_reaches_every_posts_process(
    cluster: Cluster, through: int
) -> None:
    issued = cluster.login(cluster.auth_urls[0])
    cluster.works_everywhere(issued["access_token"])
    answer = requests.post(
        f"{cluster.auth_urls[through]}/oauth/revoke",
        data={"token": issued["access_token"]},
        auth=(cluster.client.client_id, cluster.client.client_secret),
        timeout=10,
    )
    revoked_at = time.monotonic()
    assert answer.status_code == 200, answer.text
    refused_by_every_posts_process(cluster, issued["access_token"], revoked_at, "rfc7009")


def test_after_a_rotation_both_sign_with_the_new_key_and_old_tokens_still_work(
    cluster: Cluster,
) -> None:
    old = [cluster.login(auth_url)["access_token"] for auth_url in cluster.auth_urls]
    old_kid = kid_of(old[0])
    assert kid_of(old[1]) == old_kid
    # The least allowed: every auth worker has read the new key (within 50 s), then a
    # JWKS max-age for the caches. Any sooner and a worker that has not read it yet
    # could serve a JWKS without it to a cache that then refuses the new key's tokens.
    too_soon = cluster.cli.attempt("keys", "rotate", "--activate-in", str(JWKS_MAX_AGE + 49))
    assert too_soon.returncode != 0
    assert "at least 80 s" in too_soon.stderr
    cluster.cli.run("keys", "rotate", "--activate-in", str(JWKS_MAX_AGE + 50))
    new: dict[str, str] = {}
    # The key signs 80 s on; each auth process has read it by then (within 50 s).
    deadline = time.monotonic() + 120
    while len(new) < len(cluster.auth_urls):
        assert time.monotonic() < deadline, f"still signing with {old_kid}: {new}"
        for auth_url in cluster.auth_urls:
            token = cluster.login(auth_url)["access_token"]
            if kid_of(token) != old_kid:
                new[auth_url] = token
        time.sleep(1)
    assert len({kid_of(token) for token in new.values()}) == 1
    for token in [*old, *new.values()]:
        cluster.works_everywhere(token)
