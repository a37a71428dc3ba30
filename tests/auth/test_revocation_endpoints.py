"""RFC 7009 revocation and RFC 7662 introspection, in-process against real Postgres and Redis.

Revocation: 200 with an empty body, also for unknown tokens; another
client's token is left alone; the revocation is committed in Postgres and
copied to Redis before the answer, or the answer is 503 after about a
second (and the revocation still stands). Introspection: active only for a
live token the caller may see, `{"active": false}` for everything else.
"""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import time
import uuid
from typing import Any

import httpx
import pytest
import redis
import redis.asyncio as aioredis
from click.testing import CliRunner
from joserfc import jwt
from joserfc.jwk import RSAKey
from litestar import Litestar
from litestar.testing import AsyncTestClient, TestClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from portcullis_auth.http.app import create_app
from portcullis_auth.settings import AuthSettings
from portcullis_cli.main import main
from tests.auth.conftest import ISSUER, USER_PASSWORD, Seed, basic_auth

READ, WRITE = "read-posts", "write-posts"

Http = AsyncTestClient[Litestar]


# --- helpers --------------------------------------------------------------------


def claims_of(token: str) -> dict[str, Any]:
    """The JWT payload, read without checking the signature."""
    segment = token.split(".")[1]
    payload: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    )
    return payload


async def password_token(
    http: Http, client: tuple[str, str | None], email: str = "ada@example.com", scope: str = READ
) -> dict[str, Any]:
    client_id, secret = client
    assert secret is not None
    response = await http.post(
        "/oauth/token",
        data={
            "grant_type": "password",
            "username": email,
            "password": USER_PASSWORD,
            "scope": scope,
        },
        headers=basic_auth(client_id, secret),
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def client_token(http: Http, client: tuple[str, str | None]) -> dict[str, Any]:
    client_id, secret = client
    assert secret is not None
    response = await http.post(
        "/oauth/token",
        data={"grant_type": "client_credentials"},
        headers=basic_auth(client_id, secret),
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def refresh(http: Http, client: tuple[str, str | None], refresh_token: str) -> httpx.Response:
    client_id, secret = client
    assert secret is not None
    return await http.post(
        "/oauth/token",
        data={"grant_type": "refresh_token", "refresh_token": refresh_token},
        headers=basic_auth(client_id, secret),
    )


async def revoke(
    http: Http, client: tuple[str, str | None], token: str, **extra: str
) -> httpx.Response:
    client_id, secret = client
    assert secret is not None
    return await http.post(
        "/oauth/revoke", data={"token": token, **extra}, headers=basic_auth(client_id, secret)
    )


async def introspect(http: Http, client: tuple[str, str | None], token: str) -> httpx.Response:
    client_id, secret = client
    assert secret is not None
    return await http.post(
        "/oauth/introspect", data={"token": token}, headers=basic_auth(client_id, secret)
    )


async def rows(settings: AuthSettings, sql: str, **params: object) -> list[dict[str, Any]]:
    engine = create_async_engine(settings.database.url)
    try:
        async with engine.connect() as connection:
            result = await connection.execute(text(sql), params)
            return [dict(row) for row in result.mappings().all()]
    finally:
        await engine.dispose()


async def execute(settings: AuthSettings, sql: str, **params: object) -> None:
    engine = create_async_engine(settings.database.url)
    try:
        async with engine.begin() as connection:
            await connection.execute(text(sql), params)
    finally:
        await engine.dispose()


async def access_token_row(settings: AuthSettings, jti: str) -> dict[str, Any]:
    found = await rows(settings, "SELECT * FROM access_tokens WHERE jti = :jti", jti=uuid.UUID(jti))
    assert len(found) == 1, f"no access_tokens row for {jti}"
    return found[0]


async def revocation_rows(settings: AuthSettings, kind: str, subject: str) -> list[dict[str, Any]]:
    return await rows(
        settings,
        "SELECT * FROM revocations WHERE kind = :kind AND subject = :subject",
        kind=kind,
        subject=subject,
    )


def assert_oauth_error(response: httpx.Response, status: int, error: str) -> None:
    assert response.status_code == status, response.text
    assert response.json()["error"] == error, response.text
    assert response.headers["cache-control"] == "no-store"


def assert_revoke_ok(response: httpx.Response) -> None:
    """RFC 7009 §2.2: 200 and nothing in the body."""
    assert response.status_code == 200, response.text
    assert response.content == b""
    assert response.headers["cache-control"] == "no-store"


async def wait_for_key(redis: aioredis.Redis, key: str, within: float) -> float:
    """Seconds until `key` exists in Redis; fails after `within` seconds."""
    started = time.monotonic()
    while time.monotonic() - started < within:
        if await redis.exists(key):
            return time.monotonic() - started
        await asyncio.sleep(0.05)
    pytest.fail(f"{key} did not appear in Redis within {within} s")


@pytest.fixture
async def ada(seed: Seed) -> str:
    return await seed.user("ada@example.com")


@pytest.fixture
async def web(seed: Seed) -> tuple[str, str | None]:
    """A confidential client with the password and refresh grants."""
    return await seed.client(name="web", grant_types=("password", "refresh_token"))


@pytest.fixture
async def other(seed: Seed) -> tuple[str, str | None]:
    """Another confidential client: it may neither revoke nor see the web client's tokens."""
    return await seed.client(
        name="other", grant_types=("password", "refresh_token", "client_credentials")
    )


# --- RFC 7009 ---------------------------------------------------------------------


async def test_revoking_an_access_token_marks_it_records_it_and_pushes_it(
    http: Http,
    settings: AuthSettings,
    redis_client: aioredis.Redis,
    redis_prefix: str,
    ada: str,
    web: tuple[str, str | None],
) -> None:
    issued = await password_token(http, web)
    jti = claims_of(issued["access_token"])["jti"]
    assert (await access_token_row(settings, jti))["revoked_at"] is None
    key = f"{redis_prefix}revoked:jti:{jti}"
    assert not await redis_client.exists(key)

    response = await revoke(http, web, issued["access_token"])

    assert_revoke_ok(response)
    assert (await access_token_row(settings, jti))["revoked_at"] is not None
    recorded = await revocation_rows(settings, "jti", jti)
    assert len(recorded) == 1
    # Landed before the answer, not only eventually: the key is there now.
    assert await redis_client.exists(key)
    ttl = await redis_client.ttl(key)
    expires_in = claims_of(issued["access_token"])["exp"] - time.time()
    # The entry lives as long as the token could (plus leeway), not forever and not less.
    assert expires_in < ttl <= expires_in + settings.tokens.leeway + 5, ttl
    # The once-a-second sync then counts the row as landed.
    sequence_key = f"{redis_prefix}revocations:sequence"
    deadline = time.monotonic() + 3
    while int(await redis_client.get(sequence_key) or 0) < recorded[0]["id"]:
        assert time.monotonic() < deadline, "the sequence did not reach the new revocation"
        await asyncio.sleep(0.05)
    # Only this token: its refresh token (the family) still works.
    refreshed = await refresh(http, web, issued["refresh_token"])
    assert refreshed.status_code == 200, refreshed.text
    # Revoking it again is still a plain 200.
    assert_revoke_ok(await revoke(http, web, issued["access_token"]))


async def test_the_token_type_hint_is_only_a_hint(
    http: Http, settings: AuthSettings, ada: str, web: tuple[str, str | None]
) -> None:
    """RFC 7009 §2.1: a wrong hint makes the server search further, never skip the token."""
    issued = await password_token(http, web)
    jti = claims_of(issued["access_token"])["jti"]
    assert_revoke_ok(
        await revoke(http, web, issued["access_token"], token_type_hint="refresh_token")
    )
    assert (await access_token_row(settings, jti))["revoked_at"] is not None


async def test_revoking_a_refresh_token_revokes_its_whole_grant(
    http: Http,
    settings: AuthSettings,
    redis_client: aioredis.Redis,
    redis_prefix: str,
    ada: str,
    web: tuple[str, str | None],
) -> None:
    first = await password_token(http, web)
    second_response = await refresh(http, web, first["refresh_token"])
    assert second_response.status_code == 200, second_response.text
    second = second_response.json()
    sid = claims_of(first["access_token"])["sid"]
    assert claims_of(second["access_token"])["sid"] == sid
    unrelated = await password_token(http, web)

    assert_revoke_ok(
        await revoke(http, web, second["refresh_token"], token_type_hint="refresh_token")
    )

    after = await refresh(http, web, second["refresh_token"])
    assert_oauth_error(after, 400, "invalid_grant")
    grant = await rows(settings, "SELECT revoked_at FROM grants WHERE id = :id", id=uuid.UUID(sid))
    assert grant[0]["revoked_at"] is not None
    # Every access token of the family is marked, the one minted before the rotation too.
    for token in (first["access_token"], second["access_token"]):
        assert (await access_token_row(settings, claims_of(token)["jti"]))["revoked_at"] is not None
    assert len(await revocation_rows(settings, "sid", sid)) == 1
    assert await redis_client.exists(f"{redis_prefix}revoked:sid:{sid}")
    # Another family of the same user and client is untouched.
    still = await refresh(http, web, unrelated["refresh_token"])
    assert still.status_code == 200, still.text


@pytest.mark.parametrize(
    "token",
    [
        "garbage",
        "a.b.c",
        "eyJhbGciOiJub25lIn0.eyJqdGkiOiJ4In0.",
        secrets.token_urlsafe(32),
        "x" * 9000,
    ],
    ids=["word", "three-dots", "alg-none-jwt", "random-refresh-shape", "oversized"],
)
async def test_unknown_or_garbage_tokens_get_200(
    http: Http, settings: AuthSettings, web: tuple[str, str | None], token: str
) -> None:
    assert_revoke_ok(await revoke(http, web, token))
    assert await rows(settings, "SELECT id FROM revocations") == []


async def test_a_token_signed_by_another_key_is_unknown(
    http: Http, settings: AuthSettings, ada: str, web: tuple[str, str | None]
) -> None:
    """A copy of a real token's claims, signed by a key that is not ours, revokes nothing."""
    issued = await password_token(http, web)
    claims = claims_of(issued["access_token"])
    header = json.loads(base64.urlsafe_b64decode(issued["access_token"].split(".")[0] + "=="))
    forged = jwt.encode(header, claims, RSAKey.generate_key(2048), algorithms=["RS256"])
    assert_revoke_ok(await revoke(http, web, forged))
    assert (await access_token_row(settings, claims["jti"]))["revoked_at"] is None
    assert (await introspect(http, web, issued["access_token"])).json()["active"] is True


async def test_another_clients_token_is_refused_and_left_alone(
    http: Http,
    settings: AuthSettings,
    redis_client: aioredis.Redis,
    redis_prefix: str,
    ada: str,
    web: tuple[str, str | None],
    other: tuple[str, str | None],
) -> None:
    """RFC 7009 §2.1: the caller is told, never answered 200 for a token it did not end."""
    issued = await password_token(http, web)
    claims = claims_of(issued["access_token"])

    for token in (issued["access_token"], issued["refresh_token"]):
        refused = await revoke(http, other, token)
        assert refused.status_code == 400, refused.text
        assert refused.json()["error"] == "unauthorized_client"
        assert "another client" in refused.json()["error_description"]

    assert (await access_token_row(settings, claims["jti"]))["revoked_at"] is None
    assert await rows(settings, "SELECT id FROM revocations") == []
    assert not await redis_client.exists(f"{redis_prefix}revoked:jti:{claims['jti']}")
    assert not await redis_client.exists(f"{redis_prefix}revoked:sid:{claims['sid']}")
    assert (await introspect(http, web, issued["access_token"])).json()["active"] is True
    refreshed = await refresh(http, web, issued["refresh_token"])
    assert refreshed.status_code == 200, refreshed.text


async def test_revocation_needs_client_authentication(
    http: Http, settings: AuthSettings, ada: str, web: tuple[str, str | None]
) -> None:
    issued = await password_token(http, web)
    jti = claims_of(issued["access_token"])["jti"]

    anonymous = await http.post("/oauth/revoke", data={"token": issued["access_token"]})
    assert_oauth_error(anonymous, 401, "invalid_client")

    client_id, _ = web
    wrong = await http.post(
        "/oauth/revoke",
        data={"token": issued["access_token"]},
        headers=basic_auth(client_id, secrets.token_urlsafe(32)),
    )
    assert_oauth_error(wrong, 401, "invalid_client")
    assert wrong.headers["www-authenticate"].startswith("Basic")

    assert (await access_token_row(settings, jti))["revoked_at"] is None


async def test_client_secret_post_is_accepted_for_revocation(
    http: Http, settings: AuthSettings, ada: str, web: tuple[str, str | None]
) -> None:
    issued = await password_token(http, web)
    client_id, secret = web
    assert secret is not None
    response = await http.post(
        "/oauth/revoke",
        data={"token": issued["access_token"], "client_id": client_id, "client_secret": secret},
    )
    assert_revoke_ok(response)
    jti = claims_of(issued["access_token"])["jti"]
    assert (await access_token_row(settings, jti))["revoked_at"] is not None


async def test_revocation_without_a_token_is_invalid_request(
    http: Http, web: tuple[str, str | None]
) -> None:
    client_id, secret = web
    assert secret is not None
    response = await http.post(
        "/oauth/revoke",
        data={"token_type_hint": "access_token"},
        headers=basic_auth(client_id, secret),
    )
    assert_oauth_error(response, 400, "invalid_request")


# --- RFC 7662 ---------------------------------------------------------------------


async def test_introspecting_an_own_active_access_token(
    http: Http, ada: str, web: tuple[str, str | None]
) -> None:
    issued = await password_token(http, web, scope=f"{WRITE} {READ}")
    claims = claims_of(issued["access_token"])

    response = await introspect(http, web, issued["access_token"])

    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["active"] is True
    assert body["token_type"] == "access_token"
    assert set(body["scope"].split()) == {READ, WRITE}
    assert body["client_id"] == web[0]
    assert body["sub"] == ada
    assert body["exp"] == claims["exp"]
    assert body["iat"] == claims["iat"]
    assert body["jti"] == claims["jti"]
    assert body["sid"] == claims["sid"]
    assert body["iss"] == ISSUER
    assert body["aud"] == claims["aud"]


async def test_introspecting_an_own_refresh_token(
    http: Http, ada: str, web: tuple[str, str | None]
) -> None:
    issued = await password_token(http, web)
    sid = claims_of(issued["access_token"])["sid"]

    body = (await introspect(http, web, issued["refresh_token"])).json()

    assert body["active"] is True
    assert body["token_type"] == "refresh_token"
    assert body["client_id"] == web[0]
    assert body["sub"] == ada
    assert body["sid"] == sid
    assert body["scope"] == READ
    assert body["exp"] > time.time() + 86_400
    assert "jti" not in body


async def test_introspecting_a_client_credentials_token(
    http: Http, other: tuple[str, str | None]
) -> None:
    issued = await client_token(http, other)
    body = (await introspect(http, other, issued["access_token"])).json()
    assert body["active"] is True
    assert body["sub"] == other[0]
    assert body["client_id"] == other[0]


async def assert_inactive(http: Http, client: tuple[str, str | None], token: str) -> None:
    response = await introspect(http, client, token)
    assert response.status_code == 200, response.text
    assert response.json() == {"active": False}
    assert response.headers["cache-control"] == "no-store"


async def test_revoked_tokens_are_inactive(
    http: Http, ada: str, web: tuple[str, str | None]
) -> None:
    by_token = await password_token(http, web)
    assert_revoke_ok(await revoke(http, web, by_token["access_token"]))
    await assert_inactive(http, web, by_token["access_token"])

    by_grant = await password_token(http, web)
    assert_revoke_ok(await revoke(http, web, by_grant["refresh_token"]))
    await assert_inactive(http, web, by_grant["refresh_token"])
    await assert_inactive(http, web, by_grant["access_token"])


async def test_a_used_refresh_token_is_inactive(
    http: Http, ada: str, web: tuple[str, str | None]
) -> None:
    issued = await password_token(http, web)
    rotated = await refresh(http, web, issued["refresh_token"])
    assert rotated.status_code == 200
    await assert_inactive(http, web, issued["refresh_token"])
    assert (await introspect(http, web, rotated.json()["refresh_token"])).json()["active"] is True


async def test_expired_tokens_are_inactive(
    http: Http, settings: AuthSettings, ada: str, web: tuple[str, str | None]
) -> None:
    issued = await password_token(http, web)
    claims = claims_of(issued["access_token"])
    await execute(
        settings,
        "UPDATE access_tokens SET expires_at = now() - interval '1 second' WHERE jti = :jti",
        jti=uuid.UUID(claims["jti"]),
    )
    await execute(
        settings,
        "UPDATE refresh_tokens SET expires_at = now() - interval '1 second' WHERE grant_id = :sid",
        sid=uuid.UUID(claims["sid"]),
    )
    await assert_inactive(http, web, issued["access_token"])
    await assert_inactive(http, web, issued["refresh_token"])

    family_ended = await password_token(http, web)
    await execute(
        settings,
        "UPDATE grants SET expires_at = now() - interval '1 second' WHERE id = :sid",
        sid=uuid.UUID(claims_of(family_ended["access_token"])["sid"]),
    )
    await assert_inactive(http, web, family_ended["refresh_token"])


@pytest.mark.parametrize(
    "token",
    ["garbage", "a.b.c", secrets.token_urlsafe(32), "eyJhbGciOiJub25lIn0.eyJqdGkiOiJ4In0."],
    ids=["word", "three-dots", "random-refresh-shape", "alg-none-jwt"],
)
async def test_garbage_and_unknown_tokens_are_inactive(
    http: Http, web: tuple[str, str | None], token: str
) -> None:
    await assert_inactive(http, web, token)


async def test_a_token_whose_record_is_gone_is_inactive(
    http: Http, settings: AuthSettings, ada: str, web: tuple[str, str | None]
) -> None:
    """Signed by our key, but unknown to the database: not ours to call active."""
    issued = await password_token(http, web)
    await execute(
        settings,
        "DELETE FROM access_tokens WHERE jti = :jti",
        jti=uuid.UUID(claims_of(issued["access_token"])["jti"]),
    )
    await assert_inactive(http, web, issued["access_token"])


async def test_another_clients_tokens_are_inactive_unless_the_caller_may_introspect(
    http: Http, seed: Seed, ada: str, web: tuple[str, str | None], other: tuple[str, str | None]
) -> None:
    issued = await password_token(http, web)
    await assert_inactive(http, other, issued["access_token"])
    await assert_inactive(http, other, issued["refresh_token"])

    gateway = await seed.client(
        name="gateway", grant_types=("client_credentials",), introspect=True
    )
    seen = (await introspect(http, gateway, issued["access_token"])).json()
    assert seen["active"] is True
    assert seen["client_id"] == web[0]
    assert seen["sub"] == ada
    seen_refresh = (await introspect(http, gateway, issued["refresh_token"])).json()
    assert seen_refresh["active"] is True
    assert seen_refresh["token_type"] == "refresh_token"
    # Being allowed to look does not make a revoked token active.
    assert_revoke_ok(await revoke(http, web, issued["refresh_token"]))
    await assert_inactive(http, gateway, issued["access_token"])


async def test_introspection_needs_client_authentication(
    http: Http, ada: str, web: tuple[str, str | None]
) -> None:
    issued = await password_token(http, web)
    anonymous = await http.post("/oauth/introspect", data={"token": issued["access_token"]})
    assert_oauth_error(anonymous, 401, "invalid_client")
    assert "active" not in anonymous.text
    client_id, _ = web
    wrong = await http.post(
        "/oauth/introspect",
        data={"token": issued["access_token"]},
        headers=basic_auth(client_id, secrets.token_urlsafe(32)),
    )
    assert_oauth_error(wrong, 401, "invalid_client")


# --- Redis down ---------------------------------------------------------------------


def unreachable_redis_settings(settings: AuthSettings) -> AuthSettings:
    """The same database and keys, Redis on a port nothing listens on."""
    return AuthSettings.from_env(
        {
            "PORTCULLIS_ISSUER": ISSUER,
            "PORTCULLIS_DATABASE_URL": settings.database.url,
            "PORTCULLIS_REDIS_URL": "redis://127.0.0.1:1/0",
            "PORTCULLIS_REDIS_PREFIX": settings.redis.key_prefix,
            "PORTCULLIS_SECRET_KEY": settings.secret_key.hex(),
        }
    )


async def test_redis_down_revoke_answers_503_after_a_second_and_the_revocation_stands(
    http: Http,
    settings: AuthSettings,
    redis_client: aioredis.Redis,
    redis_prefix: str,
    ada: str,
    web: tuple[str, str | None],
) -> None:
    issued = await password_token(http, web)
    family = await password_token(http, web)
    jti = claims_of(issued["access_token"])["jti"]
    sid = claims_of(family["access_token"])["sid"]

    async with AsyncTestClient(
        app=create_app(unreachable_redis_settings(settings)), base_url=ISSUER
    ) as broken:
        started = time.monotonic()
        response = await revoke(broken, web, issued["access_token"])
        elapsed = time.monotonic() - started
        print(
            f"revoke with Redis down answered {response.status_code} after {elapsed * 1000:.0f} ms"
        )
        assert_oauth_error(response, 503, "temporarily_unavailable")
        assert response.headers["retry-after"]
        assert response.content != b""
        # About a second of retrying: not an instant failure, not a hang.
        assert 0.9 <= elapsed < 2.5, elapsed

        family_response = await revoke(broken, web, family["refresh_token"])
        assert_oauth_error(family_response, 503, "temporarily_unavailable")

    # Committed in Postgres all the same.
    assert (await access_token_row(settings, jti))["revoked_at"] is not None
    assert len(await revocation_rows(settings, "jti", jti)) == 1
    assert len(await revocation_rows(settings, "sid", sid)) == 1
    await assert_inactive(http, web, issued["access_token"])
    assert_oauth_error(await refresh(http, web, family["refresh_token"]), 400, "invalid_grant")
    # And it lands: the running service (with Redis) catches the list up within its sync period.
    landed = await wait_for_key(redis_client, f"{redis_prefix}revoked:jti:{jti}", within=5)
    assert await redis_client.exists(f"{redis_prefix}revoked:sid:{sid}")
    print(f"the revocation made while Redis was unreachable landed after {landed * 1000:.0f} ms")


async def test_redis_down_logout_answers_503_and_the_logout_stands(
    http: Http, settings: AuthSettings, ada: str, web: tuple[str, str | None]
) -> None:
    issued = await password_token(http, web)
    claims = claims_of(issued["access_token"])
    async with AsyncTestClient(
        app=create_app(unreachable_redis_settings(settings)), base_url=ISSUER
    ) as broken:
        response = await broken.post(
            "/oauth/logout", headers={"Authorization": f"Bearer {issued['access_token']}"}
        )
        assert_oauth_error(response, 503, "temporarily_unavailable")
    assert (await access_token_row(settings, claims["jti"]))["revoked_at"] is not None
    assert len(await revocation_rows(settings, "sid", claims["sid"])) == 1
    assert_oauth_error(await refresh(http, web, issued["refresh_token"]), 400, "invalid_grant")


def portcullis(*args: str) -> str:
    """Run `portcullis`; the last line it printed on stdout."""
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout.strip().splitlines()[-1]


def test_a_revocation_that_missed_redis_is_not_hidden_by_a_later_one_that_landed(
    settings: AuthSettings,
    seed: Seed,
    cli_environ: dict[str, str],
    redis_url: str,
    redis_prefix: str,
) -> None:
    """Two auth replicas: one cannot reach Redis, the other can.

    The first one's revocation is committed but not landed (503); the other
    one's revocation lands and moves the sequence past it. The sync must still
    find and land the first: else the revoked token lives on at every
    resource service.
    """
    first = asyncio.run(seed.client(name="first", grant_types=("client_credentials",)))
    second = asyncio.run(seed.client(name="second", grant_types=("client_credentials",)))
    assert portcullis("revocations", "sync", "--rebuild") == "revocation list: rebuilt"

    with TestClient(
        app=create_app(unreachable_redis_settings(settings)), base_url=ISSUER
    ) as cut_off:
        assert first[1] is not None
        issued = cut_off.post(
            "/oauth/token",
            data={"grant_type": "client_credentials"},
            headers=basic_auth(first[0], first[1]),
        )
        assert issued.status_code == 200, issued.text
        token = issued.json()["access_token"]
        missed = cut_off.post(
            "/oauth/revoke", data={"token": token}, headers=basic_auth(first[0], first[1])
        )
        assert missed.status_code == 503, missed.text

    # The other replica (here: the CLI) revokes something else, and that lands.
    portcullis("client", "revoke", second[0])
    synced = portcullis("revocations", "sync")

    client = redis.Redis.from_url(redis_url)
    try:
        key = f"{redis_prefix}revoked:jti:{claims_of(token)['jti']}"
        assert client.exists(key), (
            f"after `revocations sync` ({synced}) the missed revocation is still not in Redis"
        )
        assert client.exists(f"{redis_prefix}revoked:client:{second[0]}")
    finally:
        client.close()
