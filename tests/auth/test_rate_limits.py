"""Request budgets: per client address and per client, counted in Redis, 429 past them."""

from __future__ import annotations

import socket
from dataclasses import replace
from typing import Any

import httpx
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis

from portcullis_auth.http.app import create_app
from portcullis_auth.records import Client
from portcullis_auth.security.rate_limits import RateLimiter
from portcullis_auth.settings import AuthSettings, RateLimitSettings
from portcullis_shared.environment import SettingsError
from tests.auth.conftest import ISSUER, USER_PASSWORD, Seed, auth_environ, basic_auth

Http = AsyncTestClient[Litestar]
SMALL_BUDGETS = {"rate_limit_per_ip": "5/minute", "rate_limit_per_client": "3/minute"}
small_budgets = pytest.mark.parametrize("settings_overrides", [SMALL_BUDGETS], ids=["small"])
CLIENT_CREDENTIALS = {"grant_type": "client_credentials"}
OFFICE, ELSEWHERE = "203.0.113.7", "198.51.100.9"


def send(
    http: Http, app: Litestar, peer: str, method: str, url: str, **options: Any
) -> httpx.Response:
    """One request to the running `app` from the address `peer`."""

    async def one() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, client=(peer, 40000))  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=transport, base_url=ISSUER) as client:
            return await client.request(method, url, **options)

    with http.portal() as portal:
        return portal.call(one)


def token(http: Http, app: Litestar, peer: str, auth: dict[str, str]) -> httpx.Response:
    return send(http, app, peer, "POST", "/oauth/token", data=CLIENT_CREDENTIALS, headers=auth)


def assert_refused(response: httpx.Response, limit: int) -> None:
    """429 in RFC 6749's format, with when to come back and the budget."""
    assert response.status_code == 429, response.text
    assert response.json()["error"] == "temporarily_unavailable"
    assert 1 <= int(response.headers["retry-after"]) <= 60
    assert response.headers["ratelimit-limit"] == str(limit)
    assert response.headers["ratelimit-remaining"] == "0"
    assert response.headers["ratelimit-reset"] == response.headers["retry-after"]
    assert response.headers["ratelimit-policy"] == f"{limit};w=60"
    assert response.headers["cache-control"] == "no-store"


async def confidential(seed: Seed, **spec: Any) -> dict[str, str]:
    client_id, secret = await seed.client(**spec)
    assert secret is not None
    return basic_auth(client_id, secret)


@small_budgets
async def test_a_client_past_its_budget_gets_429_and_others_do_not(
    http: Http, app: Litestar, seed: Seed
) -> None:
    busy, quiet = await confidential(seed), await confidential(seed, name="quiet")
    answers = [token(http, app, f"192.0.2.{n}", busy) for n in range(4)]
    assert [a.status_code for a in answers[:3]] == [200, 200, 200]
    assert_refused(answers[3], limit=3)
    assert token(http, app, "192.0.2.50", quiet).status_code == 200


@small_budgets
async def test_an_address_past_its_budget_gets_429_before_any_work(
    http: Http, app: Litestar, seed: Seed
) -> None:
    clients = [await confidential(seed, name=f"client {n}") for n in range(6)]
    answers = [token(http, app, OFFICE, auth) for auth in clients]
    assert [a.status_code for a in answers[:5]] == [200] * 5
    assert_refused(answers[5], limit=5)
    # Refused before the body is read: a malformed request is refused the same way.
    garbage = send(http, app, OFFICE, "POST", "/oauth/token", content=b"\xff", headers={})
    assert_refused(garbage, limit=5)
    # The same client from another address is within both budgets.
    assert token(http, app, ELSEWHERE, clients[5]).status_code == 200


@small_budgets
async def test_failed_authentication_spends_no_client_budget(
    http: Http, app: Litestar, seed: Seed
) -> None:
    client_id, secret = await seed.client()
    assert secret is not None
    wrong = basic_auth(client_id, "not-the-secret")
    for n in range(4):
        assert token(http, app, f"192.0.2.{n}", wrong).status_code == 401
    right = basic_auth(client_id, secret)
    assert [token(http, app, f"192.0.2.{n}", right).status_code for n in range(3)] == [200] * 3


@small_budgets
async def test_a_client_of_its_own_budget_is_counted_by_it(
    http: Http, app: Litestar, seed: Seed
) -> None:
    generous = await confidential(seed, rate_limit="10/minute")
    stingy = await confidential(seed, name="stingy", rate_limit="1/minute")
    assert [token(http, app, f"192.0.2.{n}", generous).status_code for n in range(4)] == [200] * 4
    assert token(http, app, "192.0.2.20", stingy).status_code == 200
    assert_refused(token(http, app, "192.0.2.21", stingy), limit=1)


@small_budgets
async def test_each_endpoint_has_budgets_of_its_own(http: Http, app: Litestar, seed: Seed) -> None:
    auth = await confidential(seed)
    issued = [token(http, app, OFFICE, auth) for _ in range(3)]
    assert_refused(token(http, app, OFFICE, auth), limit=3)
    access_token = issued[0].json()["access_token"]
    introspected = [
        send(
            http,
            app,
            OFFICE,
            "POST",
            "/oauth/introspect",
            data={"token": access_token},
            headers=auth,
        )
        for _ in range(4)
    ]
    assert [a.status_code for a in introspected[:3]] == [200] * 3
    assert introspected[0].json()["active"] is True
    assert_refused(introspected[3], limit=3)
    revoked = [
        send(
            http,
            app,
            OFFICE,
            "POST",
            "/oauth/revoke",
            data={"token": a.json()["access_token"]},
            headers=auth,
        )
        for a in issued
    ]
    assert [a.status_code for a in revoked] == [200] * 3
    extra = send(http, app, OFFICE, "POST", "/oauth/revoke", data={"token": "x"}, headers=auth)
    assert_refused(extra, limit=3)


@small_budgets
async def test_personal_access_token_routes_are_limited_per_address(
    http: Http, app: Litestar, seed: Seed
) -> None:
    answers = [
        send(
            http,
            app,
            OFFICE,
            "GET",
            "/oauth/personal-access-tokens/",
            headers={"Authorization": "Bearer x"},
        )
        for _ in range(6)
    ]
    assert [a.status_code for a in answers[:5]] == [401] * 5
    assert_refused(answers[5], limit=5)


@small_budgets
async def test_personal_access_token_routes_are_limited_per_client(
    http: Http, app: Litestar, seed: Seed
) -> None:
    await seed.user("ada@example.com")
    await seed.client(
        name="personal access", grant_types=(), personal_access=True, first_party=True
    )
    web = await confidential(
        seed, name="web", grant_types=("password", "refresh_token"), first_party=True
    )
    login = {"grant_type": "password", "username": "ada@example.com", "password": USER_PASSWORD}
    access = send(http, app, OFFICE, "POST", "/oauth/token", data=login, headers=web)
    bearer = {"Authorization": f"Bearer {access.json()['access_token']}"}
    answers = [
        send(http, app, f"192.0.2.{n}", "GET", "/oauth/personal-access-tokens/", headers=bearer)
        for n in range(4)
    ]
    assert [a.status_code for a in answers[:3]] == [200] * 3
    assert_refused(answers[3], limit=3)


@small_budgets
async def test_the_authorization_page_refuses_with_an_error_page(
    http: Http, app: Litestar, seed: Seed
) -> None:
    answers = [
        send(http, app, OFFICE, "GET", "/oauth/authorize", params={"client_id": "nobody"})
        for _ in range(6)
    ]
    assert all(a.status_code != 429 for a in answers[:5])
    refused = answers[5]
    assert refused.status_code == 429
    assert refused.headers["content-type"].startswith("text/html")
    assert int(refused.headers["retry-after"]) >= 1
    assert refused.headers["ratelimit-limit"] == "5"


@small_budgets
async def test_the_device_endpoint_is_limited_per_client(
    http: Http, app: Litestar, seed: Seed
) -> None:
    client_id, _ = await seed.client(
        name="tv", grant_types=("urn:ietf:params:oauth:grant-type:device_code",), public=True
    )
    answers = [
        send(http, app, f"192.0.2.{n}", "POST", "/oauth/device/code", data={"client_id": client_id})
        for n in range(4)
    ]
    assert [a.status_code for a in answers[:3]] == [200] * 3
    assert_refused(answers[3], limit=3)


async def test_replicas_spend_from_one_budget(settings: AuthSettings, seed: Seed) -> None:
    """Two apps on the same Redis: what one counted, the other sees."""
    small = replace(settings, rate_limits=RateLimitSettings(per_client="2/minute"))
    auth = await confidential(seed)
    first, second = create_app(small), create_app(small)
    async with (
        AsyncTestClient(app=first, base_url=ISSUER) as one,
        AsyncTestClient(app=second, base_url=ISSUER) as other,
    ):
        assert (
            await one.post("/oauth/token", data=CLIENT_CREDENTIALS, headers=auth)
        ).status_code == 200
        assert (
            await other.post("/oauth/token", data=CLIENT_CREDENTIALS, headers=auth)
        ).status_code == 200
        assert_refused(await one.post("/oauth/token", data=CLIENT_CREDENTIALS, headers=auth), 2)
        assert_refused(await other.post("/oauth/token", data=CLIENT_CREDENTIALS, headers=auth), 2)


@pytest.mark.parametrize(
    "settings_overrides", [{**SMALL_BUDGETS, "rate_limits": "off"}], ids=["off"]
)
async def test_budgets_can_be_switched_off(http: Http, app: Litestar, seed: Seed) -> None:
    auth = await confidential(seed)
    assert {token(http, app, OFFICE, auth).status_code for _ in range(8)} == {200}


async def test_the_default_budgets_are_generous_and_on() -> None:
    settings = RateLimitSettings()
    assert settings.enabled
    assert settings.per_ip == "1200/minute"
    assert settings.per_client == "6000/minute"


@pytest.mark.parametrize("value", ["0/minute", "ten/minute", "5/day", "5/2 minutes", "5"])
def test_a_malformed_budget_stops_startup(settings: AuthSettings, value: str) -> None:
    with pytest.raises(SettingsError, match="PORTCULLIS_RATE_LIMIT_PER_IP"):
        AuthSettings.from_env({**_environ(settings), "PORTCULLIS_RATE_LIMIT_PER_IP": value})


async def test_the_embedded_stack_counts_in_memory() -> None:
    limiter = RateLimiter(RateLimitSettings(per_ip="2/minute"), None, "portcullis:")
    spent = [await limiter.spend_address("token", "2001:db8::1") for _ in range(2)]
    assert spent == [None, None]
    # The same /64 is the same subscriber.
    refused = await limiter.spend_address("token", "2001:db8::2")
    assert refused is not None
    assert (refused.limit, refused.window) == (2, 60)
    assert await limiter.spend_address("token", "2001:db8:1::1") is None


async def test_redis_out_of_reach_lets_requests_through() -> None:
    """The limits protect capacity; refusing everything while Redis is away would
    turn a Redis outage into an outage of the endpoints that need no Redis."""
    unreachable = Redis(host="127.0.0.1", port=_closed_port(), socket_connect_timeout=1)
    limiter = RateLimiter(RateLimitSettings(per_client="1/minute"), unreachable, "portcullis:")
    client = _client("app")
    assert [await limiter.spend_client("token", client) for _ in range(3)] == [None] * 3
    await unreachable.aclose()


def _environ(settings: AuthSettings) -> dict[str, str]:
    return auth_environ(settings.database.url, settings.redis.url or "", settings.redis.key_prefix)


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _client(client_id: str) -> Client:
    return Client(
        id=client_id,
        grant_types=("client_credentials",),
        scopes=(),
        default_scopes=(),
        audiences=("posts",),
        redirect_uris=(),
        name=client_id,
        first_party=False,
        personal_access=False,
        introspect=False,
        version=1,
        secret_hash=None,
    )
