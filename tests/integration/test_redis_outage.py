"""Redis goes away and comes back empty: revocations made meanwhile still land, nothing fails open.

This module runs its own `redis-server` (never the shared one) and its own
stack against it, stops that Redis, revokes while it is down, and starts it
again on the same port with nothing in it, as a restart without persistence
would.
"""

from __future__ import annotations

import asyncio
import secrets
import shutil
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO, Any

import asyncpg
import pytest
import redis
import requests

from tests.infrastructure import asyncpg_dsn
from tests.integration.processes import ServiceProcess, executable, free_port
from tests.integration.stack import READ, Stack, running_stack

RETURNS_WITHIN = 5.0
"""After Redis is back, the list is rebuilt by the auth service's once-a-second check."""


class RedisServer:
    """A throwaway `redis-server` on a fixed port, without persistence."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.workdir = workdir
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def start(self) -> None:
        assert self.process is None, "already running"
        executable = shutil.which("redis-server")
        assert executable is not None, "redis-server is not on PATH"
        self._log = (self.workdir / "redis.log").open("ab")
        self.process = subprocess.Popen(
            [
                executable,
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--save", "",
                "--appendonly", "no",
                "--maxmemory-policy", "noeviction",
                "--dir", str(self.workdir),
            ],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=self.workdir,
        )  # fmt: skip

    def wait_until_ready(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        client = redis.Redis.from_url(self.url, socket_connect_timeout=0.5, socket_timeout=0.5)
        try:
            while time.monotonic() < deadline:
                assert self.process is not None
                assert self.process.poll() is None, (self.workdir / "redis.log").read_text()
                try:
                    if client.ping():
                        return
                except redis.RedisError:
                    time.sleep(0.02)
            pytest.fail(f"redis-server on port {self.port} did not answer within {timeout} s")
        finally:
            client.close()

    @property
    def running(self) -> bool:
        return self.process is not None

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        if self._log is not None:
            self._log.close()
            self._log = None

    def keys(self, pattern: str) -> list[bytes]:
        client = redis.Redis.from_url(self.url)
        try:
            return list(client.scan_iter(match=pattern))
        finally:
            client.close()


@pytest.fixture(scope="module")
def own_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    try:
        server.wait_until_ready()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
async def outage_stack(
    own_redis: RedisServer,
    postgres_url: str,
    service_postgres_url: str,
    template_database: str,
    resource_template_database: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Stack]:
    async with running_stack(
        postgres_url,
        service_postgres_url,
        own_redis.url,
        template_database,
        resource_template_database,
        tmp_path_factory.mktemp("outage-stack"),
    ) as running:
        yield running


@pytest.fixture
def redis_restored(own_redis: RedisServer) -> Iterator[RedisServer]:
    """Whatever a test does to it, Redis is running again afterwards."""
    yield own_redis
    if not own_redis.running:
        own_redis.start()
        own_redis.wait_until_ready()


# --- helpers ------------------------------------------------------------------------


def posts(stack: Stack, token: str) -> requests.Response:
    return stack.posts_call("GET", "/api/posts", token)


def assert_fails_closed(response: requests.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["Retry-After"]
    assert response.json()["error"] == "temporarily_unavailable"


def wait_until_working(stack: Stack, token: str, within: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < within:
        response = posts(stack, token)
        if response.status_code == 200:
            return time.monotonic() - started
        assert response.status_code == 503, response.text
        time.sleep(0.05)
    pytest.fail(f"a valid token still failed {within} s after Redis came back")


def access_token_revoked_at(stack: Stack, jti: str) -> Any:
    async def query() -> Any:
        dsn = asyncpg_dsn(stack.auth_database_url)
        connection = await asyncpg.connect(dsn)
        try:
            return await connection.fetchval(
                "SELECT revoked_at FROM access_tokens WHERE jti = $1", uuid.UUID(jti)
            )
        finally:
            await connection.close()

    return asyncio.run(query())


def jti_of(stack: Stack, token: str) -> str:
    response = requests.post(
        f"{stack.auth_url}/oauth/introspect",
        data={"token": token},
        auth=(stack.password_client.client_id, stack.password_client.client_secret),
        timeout=10,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["active"] is True, body
    return str(body["jti"])


def introspected(stack: Stack, token: str) -> dict[str, Any]:
    response = requests.post(
        f"{stack.auth_url}/oauth/introspect",
        data={"token": token},
        auth=(stack.password_client.client_id, stack.password_client.client_secret),
        timeout=10,
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


# --- tests --------------------------------------------------------------------------


def test_redis_down_means_503_with_retry_after_at_the_posts_service(
    outage_stack: Stack, redis_restored: RedisServer
) -> None:
    stack = outage_stack
    token = stack.token("bob@example.com", READ)["access_token"]
    assert posts(stack, token).status_code == 200

    redis_restored.stop()

    for _ in range(3):
        assert_fails_closed(posts(stack, token))
    garbage = posts(stack, "garbage")
    assert garbage.status_code == 401  # a token that cannot verify needs no revocation list
    ready = requests.get(f"{stack.auth_url}/readyz", timeout=10)
    assert ready.status_code == 503, ready.text

    redis_restored.start()
    returned_at = time.monotonic()
    redis_restored.wait_until_ready()
    wait_until_working(stack, token, RETURNS_WITHIN)
    delay = time.monotonic() - returned_at
    print(f"Redis back (empty): a valid token works again after {delay * 1000:.0f} ms")


def test_a_revocation_made_while_redis_is_down_lands_when_it_returns(
    outage_stack: Stack, redis_restored: RedisServer
) -> None:
    stack = outage_stack
    by_revoke = stack.token("ada@example.com", READ)
    by_logout = stack.token("ada@example.com", READ)
    email = f"user-{secrets.token_hex(4)}@example.com"
    stack.passwords[email] = secrets.token_urlsafe(16)
    stack.cli.json("user", "create", email, "--password-stdin", stdin=stack.passwords[email] + "\n")
    by_user = stack.token(email, READ)
    valid = stack.token("bob@example.com", READ)["access_token"]
    revoked = {
        "revoke": by_revoke["access_token"],
        "logout": by_logout["access_token"],
        "user": by_user["access_token"],
    }
    jti = jti_of(stack, by_revoke["access_token"])
    for token in (*revoked.values(), valid):
        assert posts(stack, token).status_code == 200

    redis_restored.stop()
    assert_fails_closed(posts(stack, valid))

    started = time.monotonic()
    response = requests.post(
        f"{stack.auth_url}/oauth/revoke",
        data={"token": by_revoke["access_token"]},
        auth=(stack.password_client.client_id, stack.password_client.client_secret),
        timeout=10,
    )
    elapsed = time.monotonic() - started
    print(f"/oauth/revoke with Redis down: {response.status_code} after {elapsed * 1000:.0f} ms")
    assert response.status_code == 503, response.text
    assert response.json()["error"] == "temporarily_unavailable"
    assert response.headers["Retry-After"]
    assert 0.9 <= elapsed < 3.0, elapsed

    logout = requests.post(
        f"{stack.auth_url}/oauth/logout",
        headers={"Authorization": f"Bearer {by_logout['access_token']}"},
        timeout=10,
    )
    assert logout.status_code == 503, logout.text

    cli = stack.cli.run("user", "revoke-tokens", email)
    assert "Redis is unreachable" in cli.stderr, cli.stderr

    # Committed in Postgres while Redis was down.
    assert access_token_revoked_at(stack, jti) is not None
    for token in revoked.values():
        assert introspected(stack, token) == {"active": False}
    # Logout took its family; /oauth/revoke of an access token took that token only.
    assert introspected(stack, by_logout["refresh_token"]) == {"active": False}
    assert introspected(stack, by_revoke["refresh_token"])["active"] is True

    # Redis comes back empty on the same port. From that moment on, poll: a revoked token
    # must never be accepted, and each must be refused within a few seconds.
    redis_restored.start()
    returned_at = time.monotonic()
    refused_after: dict[str, float] = {}
    valid_after: float | None = None
    seen: dict[str, dict[int, int]] = {kind: {} for kind in (*revoked, "valid")}
    while time.monotonic() - returned_at < RETURNS_WITHIN:
        for kind, token in revoked.items():
            answer = posts(stack, token)
            seen[kind][answer.status_code] = seen[kind].get(answer.status_code, 0) + 1
            assert answer.status_code != 200, (
                f"the {kind}-revoked token was accepted after Redis returned"
            )
            assert answer.status_code in (401, 503), answer.text
            if answer.status_code == 401:
                refused_after.setdefault(kind, time.monotonic() - returned_at)
        answer = posts(stack, valid)
        seen["valid"][answer.status_code] = seen["valid"].get(answer.status_code, 0) + 1
        if answer.status_code == 200 and valid_after is None:
            valid_after = time.monotonic() - returned_at
        if valid_after is not None and len(refused_after) == len(revoked):
            break
        time.sleep(0.02)
    print(f"after Redis returned: {seen}")
    print(
        "revoked tokens refused after "
        + ", ".join(f"{kind} {delay * 1000:.0f} ms" for kind, delay in refused_after.items())
        + f"; a valid token works after {(valid_after or 0) * 1000:.0f} ms"
    )
    assert set(refused_after) == set(revoked), f"not refused within {RETURNS_WITHIN} s: {seen}"
    assert valid_after is not None, f"a valid token did not work within {RETURNS_WITHIN} s"
    # Landed: the entries are in the new Redis, and they stay refused.
    prefix = stack.redis_prefix
    assert redis_restored.keys(f"{prefix}revoked:jti:{jti}")
    assert redis_restored.keys(f"{prefix}revocations:marker")
    for token in revoked.values():
        answer = posts(stack, token)
        assert answer.status_code == 401
        assert 'error="invalid_token"' in answer.headers["WWW-Authenticate"]
    assert posts(stack, valid).status_code == 200


def revocation_rows_for(stack: Stack, subject: str) -> int:
    async def query() -> int:
        connection = await asyncpg.connect(asyncpg_dsn(stack.auth_database_url))
        try:
            return int(
                await connection.fetchval(
                    "SELECT count(*) FROM revocations WHERE subject = $1", subject
                )
            )
        finally:
            await connection.close()

    return asyncio.run(query())


def test_a_revocation_through_a_replica_cut_off_from_redis_still_lands(
    outage_stack: Stack, own_redis: RedisServer, tmp_path: Path
) -> None:
    """Two auth replicas share the database; one cannot reach Redis.

    The cut-off replica commits its revocation and answers 503; right after,
    the healthy replica revokes something else, and that lands. The first
    revocation must still reach Redis (the healthy replica's sync finds it)
    and the token be refused at the posts service.
    """
    stack = outage_stack
    port = free_port()
    replica = ServiceProcess(
        [executable("portcullis"), "serve", "auth"],
        base_url=f"http://127.0.0.1:{port}",
        environ={
            **stack.cli.environ,
            "PORTCULLIS_PORT": str(port),
            "PORTCULLIS_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",  # nothing listens
        },
        cwd=tmp_path,
        log_path=tmp_path / "replica.log",
    )
    replica.start()
    try:
        missed = stack.token("ada@example.com", READ)
        landed = stack.token("bob@example.com", READ)
        for token in (missed["access_token"], landed["access_token"]):
            assert posts(stack, token).status_code == 200
        jti = jti_of(stack, missed["access_token"])
        auth = (stack.password_client.client_id, stack.password_client.client_secret)

        with ThreadPoolExecutor(max_workers=1) as pool:
            cut_off = pool.submit(
                requests.post,
                f"{replica.base_url}/oauth/revoke",
                data={"token": missed["access_token"]},
                auth=auth,
                timeout=10,
            )
            # As soon as the cut-off replica has committed, the healthy one revokes too.
            deadline = time.monotonic() + 5
            while revocation_rows_for(stack, jti) == 0:
                assert time.monotonic() < deadline, "the cut-off replica did not commit"
            healthy = requests.post(
                f"{stack.auth_url}/oauth/revoke",
                data={"token": landed["access_token"]},
                auth=auth,
                timeout=10,
            )
            committed_at = time.monotonic()
            assert healthy.status_code == 200, healthy.text
            assert cut_off.result().status_code == 503

        delay = None
        while time.monotonic() - committed_at < 3.0:
            answer = posts(stack, missed["access_token"])
            if answer.status_code == 401:
                delay = time.monotonic() - committed_at
                break
            assert answer.status_code == 200, answer.text
            time.sleep(0.02)
        assert delay is not None, "the revocation made through the cut-off replica never landed"
        print(
            f"revocation through a replica cut off from Redis refused after {delay * 1000:.0f} ms"
        )
        assert posts(stack, landed["access_token"]).status_code == 401
    finally:
        replica.stop()
