"""Backends failing: answers are 503 in RFC 6749 form, nothing is issued."""

from __future__ import annotations

import asyncio
import subprocess

import pytest
import redis.asyncio as aioredis
from litestar import Litestar
from litestar.testing import AsyncTestClient
from redis.exceptions import RedisError

from portcullis_auth.http.app import create_app
from portcullis_auth.revocation.publisher import RedisPolicyError
from portcullis_auth.settings import AuthSettings
from tests.auth.conftest import ISSUER, USER_PASSWORD, Seed, basic_auth
from tests.auth.helpers import USER_EMAIL
from tests.infrastructure import drop_database
from tests.integration.processes import free_port


@pytest.mark.parametrize("client_cached", [False, True], ids=["cold", "cached-client"])
async def test_database_down_gives_503_and_jwks_is_still_served(
    http: AsyncTestClient[Litestar],
    seed: Seed,
    postgres_url: str,
    database_url: str,
    client_cached: bool,
) -> None:
    """With the client's row cached, nothing but the token's record needs the database:
    that write failing must still mean 503 and no token."""
    client_id, secret = await seed.client()
    assert secret is not None
    jwks_before = await http.get("/.well-known/jwks.json")
    assert jwks_before.status_code == 200
    if client_cached:
        warm = await http.post(
            "/oauth/token",
            data={"grant_type": "client_credentials"},
            headers=basic_auth(client_id, secret),
        )
        assert warm.status_code == 200

    await drop_database(postgres_url, database_url.rsplit("/", 1)[1])

    response = await http.post(
        "/oauth/token",
        data={"grant_type": "client_credentials"},
        headers=basic_auth(client_id, secret),
    )
    assert response.status_code == 503
    assert response.json()["error"] == "temporarily_unavailable"
    assert "access_token" not in response.text
    assert response.headers["retry-after"]
    jwks = await http.get("/.well-known/jwks.json")
    assert jwks.status_code == 200
    assert jwks.json() == jwks_before.json()
    ready = await http.get("/readyz")
    assert ready.status_code == 503


async def test_database_down_gives_503_to_a_refresh(
    http: AsyncTestClient[Litestar], seed: Seed, postgres_url: str, database_url: str
) -> None:
    """A refresh's statements run on connections of their own (not the session's):
    their failure is a 503 too, never a 500."""
    await seed.user()
    client_id, secret = await seed.client()
    assert secret is not None
    login = await http.post(
        "/oauth/token",
        data={"grant_type": "password", "username": USER_EMAIL, "password": USER_PASSWORD},
        headers=basic_auth(client_id, secret),
    )
    assert login.status_code == 200, login.text

    await drop_database(postgres_url, database_url.rsplit("/", 1)[1])

    response = await http.post(
        "/oauth/token",
        data={"grant_type": "refresh_token", "refresh_token": login.json()["refresh_token"]},
        headers=basic_auth(client_id, secret),
    )
    assert response.status_code == 503, response.text
    assert response.json()["error"] == "temporarily_unavailable"
    assert "access_token" not in response.text


async def test_redis_down_fails_password_grant_closed(settings: AuthSettings, seed: Seed) -> None:
    await seed.user()
    client_id, secret = await seed.client()
    assert secret is not None
    broken = AuthSettings.from_env(
        {
            "PORTCULLIS_ISSUER": ISSUER,
            "PORTCULLIS_DATABASE_URL": settings.database.url,
            # Nothing listens on port 1: the throttle cannot count failures.
            "PORTCULLIS_REDIS_URL": "redis://127.0.0.1:1/0",
            "PORTCULLIS_SECRET_KEY": settings.secret_key.hex(),
        }
    )
    async with AsyncTestClient(app=create_app(broken), base_url=ISSUER) as http:
        response = await http.post(
            "/oauth/token",
            data={
                "grant_type": "password",
                "username": "ada@example.com",
                "password": USER_PASSWORD,
            },
            headers=basic_auth(client_id, secret),
        )
        assert response.status_code == 503
        assert response.json()["error"] == "temporarily_unavailable"
        ready = await http.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["redis"] == "unavailable"


async def test_auth_service_refuses_a_redis_that_may_evict(
    settings: AuthSettings, seed: Seed
) -> None:
    port = free_port()
    server = await asyncio.create_subprocess_exec(
        *("redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""),
        *("--appendonly", "no", "--maxmemory-policy", "allkeys-lru"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        client = aioredis.Redis.from_url(f"redis://127.0.0.1:{port}/0")
        for _ in range(100):
            try:
                await client.ping()
                break
            except RedisError:
                await asyncio.sleep(0.05)
        await client.aclose()
        evicting = AuthSettings.from_env(
            {
                "PORTCULLIS_ISSUER": ISSUER,
                "PORTCULLIS_DATABASE_URL": settings.database.url,
                "PORTCULLIS_REDIS_URL": f"redis://127.0.0.1:{port}/0",
                "PORTCULLIS_SECRET_KEY": settings.secret_key.hex(),
            }
        )
        refused = pytest.RaisesGroup(
            pytest.RaisesExc(RedisPolicyError, match="noeviction"), flatten_subgroups=True
        )
        with refused:
            async with AsyncTestClient(app=create_app(evicting), base_url=ISSUER):
                pass
    finally:
        server.terminate()
        await server.wait()
