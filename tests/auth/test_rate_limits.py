"""Request budgets: per client address and per client, counted in Redis, 429 past them."""

from __future__ import annotations

import asyncio
import logging
import secrets
import socket
import time
from dataclasses import replace
from typing import Any

import httpx
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis

from portcullis_auth.http.app import create_app
from portcullis_auth.records import Client
from portcullis_auth.security.rate_limits import (
    REDIS_PATIENCE,
    SYNC_INTERVAL,
    Endpoint,
    RateLimiter,
)
from portcullis_auth.settings import AuthSettings, RateLimitSettings
from portcullis_shared.environment import SettingsError
from tests.auth.conftest import ISSUER, USER_PASSWORD, Seed, auth_environ, basic_auth

Http = AsyncTestClient[Litestar]
SMALL_BUDGETS = {"rate_limit_per_ip": "5/hour", "rate_limit_per_client": "3/hour"}
"""Hours: windows are aligned to the clock, and a test must not straddle two."""
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
    assert 1 <= int(response.headers["retry-after"]) <= 3600
    assert response.headers["ratelimit-limit"] == str(limit)
    assert response.headers["ratelimit-remaining"] == "0"
    assert response.headers["ratelimit-reset"] == response.headers["retry-after"]
    assert response.headers["ratelimit-policy"] == f"{limit};w=3600"
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
    generous = await confidential(seed, rate_limit="10/hour")
    stingy = await confidential(seed, name="stingy", rate_limit="1/hour")
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
async def test_personal_access_token_routes_are_limited_per_user(
    http: Http, app: Litestar, seed: Seed
) -> None:
    """Every user's token comes from the same first-party client: one user spends only
    their own budget, never the other users'."""
    await seed.client(
        name="personal access", grant_types=(), personal_access=True, first_party=True
    )
    web = await confidential(
        seed, name="web", grant_types=("password", "refresh_token"), first_party=True
    )
    bearers = []
    for email in ("ada@example.com", "bob@example.com"):
        await seed.user(email)
        login = {"grant_type": "password", "username": email, "password": USER_PASSWORD}
        access = send(http, app, ELSEWHERE, "POST", "/oauth/token", data=login, headers=web)
        bearers.append({"Authorization": f"Bearer {access.json()['access_token']}"})
    ada, bob = bearers
    answers = [
        send(http, app, f"192.0.2.{n}", "GET", "/oauth/personal-access-tokens/", headers=ada)
        for n in range(4)
    ]
    assert [a.status_code for a in answers[:3]] == [200] * 3
    assert_refused(answers[3], limit=3)
    bobs = send(http, app, "192.0.2.9", "GET", "/oauth/personal-access-tokens/", headers=bob)
    assert bobs.status_code == 200, bobs.text


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
async def test_a_public_client_is_limited_per_client_and_address(
    http: Http, app: Litestar, seed: Seed
) -> None:
    """Anyone can send a public client's id: one caller must not spend the budget of
    every device in the field, so the budget is the client's at each address."""
    client_id, _ = await seed.client(
        name="tv", grant_types=("urn:ietf:params:oauth:grant-type:device_code",), public=True
    )
    start = {"client_id": client_id}
    elsewhere = [
        send(http, app, f"192.0.2.{n}", "POST", "/oauth/device/code", data=start) for n in range(4)
    ]
    assert [a.status_code for a in elsewhere] == [200] * 4
    at_home = [send(http, app, OFFICE, "POST", "/oauth/device/code", data=start) for _ in range(4)]
    assert [a.status_code for a in at_home[:3]] == [200] * 3
    assert_refused(at_home[3], limit=3)


@small_budgets
async def test_a_first_party_client_is_limited_per_client_and_address(
    http: Http, app: Litestar, seed: Seed
) -> None:
    """A login proxy sends its client's secret for every visitor: one visitor must not
    lock every other out of logging in."""
    proxy = await confidential(seed, name="login proxy", first_party=True)
    visitors = [token(http, app, f"192.0.2.{n}", proxy) for n in range(4)]
    assert [a.status_code for a in visitors] == [200] * 4
    one = [token(http, app, OFFICE, proxy) for _ in range(4)]
    assert [a.status_code for a in one[:3]] == [200] * 3
    assert_refused(one[3], limit=3)


@small_budgets
async def test_an_untrusted_forwarded_for_buys_no_fresh_budget(
    http: Http, app: Litestar, seed: Seed
) -> None:
    """No proxy is trusted: a caller naming a new address each time is still counted
    by its own."""
    clients = [await confidential(seed, name=f"client {n}") for n in range(6)]
    answers = [
        send(
            http,
            app,
            OFFICE,
            "POST",
            "/oauth/token",
            data=CLIENT_CREDENTIALS,
            headers={**auth, "X-Forwarded-For": f"10.0.0.{n}"},
        )
        for n, auth in enumerate(clients)
    ]
    assert [a.status_code for a in answers[:5]] == [200] * 5
    assert_refused(answers[5], limit=5)


async def test_replicas_spend_from_one_budget(settings: AuthSettings, seed: Seed) -> None:
    """Two apps on the same Redis. A replica learns the others' counts when it sends
    its own (every SYNC_INTERVAL while it counts): each may admit one request on a
    total it read before the other's, and none after."""
    small = replace(settings, rate_limits=RateLimitSettings(per_client="4/hour"))
    auth = await confidential(seed)
    first, second = create_app(small), create_app(small)
    async with (
        AsyncTestClient(app=first, base_url=ISSUER) as one,
        AsyncTestClient(app=second, base_url=ISSUER) as other,
    ):
        statuses = []
        for _ in range(4):
            for replica in (one, other):
                answer = await replica.post("/oauth/token", data=CLIENT_CREDENTIALS, headers=auth)
                statuses.append(answer.status_code)
            await asyncio.sleep(SYNC_INTERVAL * 3)
        for replica in (one, other):
            answer = await replica.post("/oauth/token", data=CLIENT_CREDENTIALS, headers=auth)
            assert_refused(answer, 4)
    # Alone, each would have admitted 4: together they admitted the budget, and at most
    # one request each on a stale total.
    assert 4 <= statuses.count(200) <= 6, statuses
    assert set(statuses) <= {200, 429}, statuses


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
    limiter = RateLimiter(RateLimitSettings(per_ip="2/hour"), None, "portcullis:")
    spent = [limiter.spend_address(Endpoint.TOKEN, "2001:db8::1") for _ in range(2)]
    assert spent == [None, None]
    # The same /64 is the same subscriber.
    refused = limiter.spend_address(Endpoint.TOKEN, "2001:db8::2")
    assert refused is not None
    assert (refused.limit, refused.window) == (2, 3600)
    assert limiter.spend_address(Endpoint.TOKEN, "2001:db8:1::1") is None


async def test_a_window_ends_and_its_budget_comes_back() -> None:
    now = [7200.0]
    limiter = RateLimiter(
        RateLimitSettings(per_ip="1/minute"), None, "portcullis:", clock=lambda: now[0]
    )
    assert limiter.spend_address(Endpoint.TOKEN, OFFICE) is None
    now[0] += 45
    refused = limiter.spend_address(Endpoint.TOKEN, OFFICE)
    assert refused is not None
    assert refused.retry_after == 15  # windows are aligned to the clock's minutes
    now[0] += 15
    assert limiter.spend_address(Endpoint.TOKEN, OFFICE) is None


async def test_redis_out_of_reach_leaves_each_process_counting_alone() -> None:
    """Refusing everything while Redis is away would turn a Redis outage into an
    outage of the endpoints that need no Redis; letting everything through would
    drop the limits. Each process keeps counting on its own."""
    unreachable = Redis(host="127.0.0.1", port=_closed_port(), socket_connect_timeout=1)
    limiter = RateLimiter(RateLimitSettings(per_client="2/hour"), unreachable, "portcullis:")
    client = _client("app")
    assert limiter.spend_client(Endpoint.TOKEN, client, OFFICE) is None
    assert await limiter.sync()  # tried, and failed: the count stays to be sent later
    assert limiter.spend_client(Endpoint.TOKEN, client, OFFICE) is None
    assert limiter.spend_client(Endpoint.TOKEN, client, OFFICE) is not None
    await limiter.close()
    await unreachable.aclose()


async def test_a_redis_that_does_not_answer_delays_no_request() -> None:
    """A Redis that takes connections and never answers (a hung server): requests are
    counted as fast as ever, and an exchange gives up after REDIS_PATIENCE."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # never accepted: the handshake completes, nothing answers
        port = silent.getsockname()[1]
        hung = Redis(host="127.0.0.1", port=port, socket_timeout=5, socket_connect_timeout=5)
        limiter = RateLimiter(RateLimitSettings(per_ip="1000/hour"), hung, "portcullis:")
        started = time.monotonic()
        for _ in range(100):
            assert limiter.spend_address(Endpoint.TOKEN, OFFICE) is None
        spent = time.monotonic() - started
        started = time.monotonic()
        assert await limiter.sync()
        exchange = time.monotonic() - started
        limiter._counts.clear()  # nothing left to send on close
        await limiter.close()
        await hung.aclose()
    assert spent < 0.05, spent
    assert REDIS_PATIENCE - 0.1 < exchange < REDIS_PATIENCE + 0.5, exchange


async def test_a_redis_that_refuses_to_count_is_logged(
    redis_url: str, redis_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    """An ACL user that may not write: budgets hold per process, and the operator is told."""
    admin = Redis.from_url(redis_url)
    user, password = f"{redis_prefix}readonly", secrets.token_hex(16)
    await admin.acl_setuser(
        user,
        enabled=True,
        passwords=[f"+{password}"],
        keys=[f"{redis_prefix}*"],
        commands=["+@all", "-@write"],
    )
    try:
        limited = Redis.from_url(redis_url, username=user, password=password)
        limiter = RateLimiter(RateLimitSettings(per_ip="2/hour"), limited, redis_prefix)
        with caplog.at_level(logging.WARNING, logger="portcullis.auth"):
            assert limiter.spend_address(Endpoint.TOKEN, OFFICE) is None
            assert await limiter.sync()
            assert limiter.spend_address(Endpoint.TOKEN, OFFICE) is None
            assert await limiter.sync()
        assert limiter.spend_address(Endpoint.TOKEN, OFFICE) is not None
        limiter._counts.clear()
        await limiter.close()
        await limited.aclose()
    finally:
        await admin.acl_deluser(user)
        await admin.aclose()
    warnings = [
        r.getMessage() for r in caplog.records if "counted per process only" in r.getMessage()
    ]
    assert len(warnings) == 1, warnings


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
