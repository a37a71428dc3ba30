"""The auth service's `/metrics`: served only when turned on, and each counter moves
when its event happens (a token issued, a refresh token replayed, a revocation
recorded, published or left waiting, a login throttled).

The counters belong to the test process, so each test compares a scrape after
the event with a scrape before it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from portcullis_auth.http.app import create_app
from portcullis_auth.settings import AuthSettings
from tests.auth.conftest import ISSUER, Seed, auth_environ, basic_auth
from tests.auth.helpers import (
    client_credentials_grant,
    password_grant,
    refresh_grant,
    sign_in,
)
from tests.metrics import sample
from tests.shared.conftest import RedisCommandProxy

Http = AsyncTestClient[Litestar]
METRICS_ON = {"metrics": "on"}


@pytest.fixture
def settings_overrides() -> dict[str, str]:
    return dict(METRICS_ON)


async def scrape(http: Http) -> str:
    """`/metrics` as a scraper gets it: no credentials of any kind."""
    response = await http.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return response.text


def moved(before: str, after: str, name: str, **labels: str) -> float:
    return sample(after, name, **labels) - sample(before, name, **labels)


async def revoke(http: Http, client_id: str, secret: str, token: str) -> int:
    response = await http.post(
        "/oauth/revoke", data={"token": token}, headers=basic_auth(client_id, secret)
    )
    return response.status_code


@pytest.mark.parametrize("settings_overrides", [{}], ids=["default"])
async def test_metrics_are_not_served_unless_turned_on(http: Http) -> None:
    assert (await http.get("/metrics")).status_code == 404


async def test_a_method_of_the_callers_own_makes_no_series_of_its_own(http: Http) -> None:
    """A label holds nothing a request carried: a made-up method counts as `other`."""
    before = await scrape(http)
    for n in range(3):
        await http.request(f"X{n}INJECTED", "/oauth/token")
    after = await scrape(http)

    assert "INJECTED" not in after
    route = {"app_name": "auth", "path": "/oauth/token"}
    assert moved(before, after, "portcullis_requests_total", method="other", **route) == 3


async def test_each_grant_counts_the_token_it_issued(http: Http, seed: Seed) -> None:
    await seed.user()
    client_id, secret = await seed.client()
    assert secret is not None
    before = await scrape(http)

    machine = await client_credentials_grant(http, client_id, secret)
    login = await password_grant(http, client_id, secret)
    refreshed = await refresh_grant(http, client_id, secret, login.json()["refresh_token"])
    assert [r.status_code for r in (machine, login, refreshed)] == [200, 200, 200]
    after = await scrape(http)

    issued = "portcullis_tokens_issued_total"
    for grant in ("client_credentials", "password", "refresh_token"):
        assert moved(before, after, issued, grant_type=grant) == 1, grant
    assert moved(before, after, "portcullis_auth_events_total", event="token_issued") == 2
    assert moved(before, after, "portcullis_auth_events_total", event="token_refreshed") == 1
    token_endpoint = {"app_name": "auth", "method": "POST", "path": "/oauth/token"}
    assert (
        moved(before, after, "portcullis_requests_total", status_code="200", **token_endpoint) == 3
    )
    # Nothing secret reaches a label.
    for value in (
        secret,
        machine.json()["access_token"],
        login.json()["refresh_token"],
        refreshed.json()["refresh_token"],
    ):
        assert value not in after


@pytest.mark.parametrize("settings_overrides", [{**METRICS_ON, "refresh_grace": "0"}])
async def test_a_replayed_refresh_token_counts_as_reuse_and_its_revocation_lands(
    http: Http, seed: Seed
) -> None:
    await seed.user()
    client_id, secret = await seed.client()
    assert secret is not None
    first = (await password_grant(http, client_id, secret)).json()["refresh_token"]
    assert (await refresh_grant(http, client_id, secret, first)).status_code == 200
    before = await scrape(http)

    replay = await refresh_grant(http, client_id, secret, first)
    assert replay.status_code == 400, replay.text
    after = await scrape(http)

    assert moved(before, after, "portcullis_refresh_token_reuse_total") == 1
    assert moved(before, after, "portcullis_auth_events_total", event="refresh_token_reused") == 1
    # The family's revocation: committed, and landed in Redis by the request itself.
    assert moved(before, after, "portcullis_revocations_recorded_total", kind="sid") == 1
    assert moved(before, after, "portcullis_revocations_published_total", kind="sid") == 1


async def test_a_repeat_within_the_grace_window_is_not_reuse(http: Http, seed: Seed) -> None:
    await seed.user()
    client_id, secret = await seed.client()
    assert secret is not None
    first = (await password_grant(http, client_id, secret)).json()["refresh_token"]
    assert (await refresh_grant(http, client_id, secret, first)).status_code == 200
    before = await scrape(http)

    assert (await refresh_grant(http, client_id, secret, first)).status_code == 400
    after = await scrape(http)

    assert moved(before, after, "portcullis_refresh_token_reuse_total") == 0
    assert moved(before, after, "portcullis_auth_events_total", event="refresh_token_repeated") == 1
    assert moved(before, after, "portcullis_revocations_recorded_total") == 0


async def test_a_revoked_token_is_counted_recorded_and_published(http: Http, seed: Seed) -> None:
    client_id, secret = await seed.client()
    assert secret is not None
    token = (await client_credentials_grant(http, client_id, secret)).json()["access_token"]
    before = await scrape(http)

    assert await revoke(http, client_id, secret, token) == 200
    after = await scrape(http)

    assert moved(before, after, "portcullis_revocations_recorded_total", kind="jti") == 1
    assert moved(before, after, "portcullis_revocations_published_total", kind="jti") == 1
    assert sample(after, "portcullis_revocations_waiting") == 0


@pytest.mark.parametrize("settings_overrides", [{**METRICS_ON, "login_max_failures": "1"}])
async def test_throttled_logins_are_counted_at_the_token_endpoint_and_the_sign_in_page(
    http: Http, seed: Seed
) -> None:
    await seed.user()
    client_id, secret = await seed.client()
    assert secret is not None
    before = await scrape(http)

    assert (await password_grant(http, client_id, secret, password="a guess")).status_code == 400
    throttled = await password_grant(http, client_id, secret, password="another guess")
    assert throttled.status_code == 429, throttled.text
    assert (await sign_in(http, password="a third guess")).status_code == 429
    after = await scrape(http)

    assert moved(before, after, "portcullis_logins_throttled_total") == 2
    assert moved(before, after, "portcullis_auth_events_total", event="login_failed") == 1
    assert moved(before, after, "portcullis_auth_events_total", event="login_throttled") == 2


# --- Redis out of reach: recorded, not published, waiting until the sync loop lands it ----


async def scrape_until(
    http: Http, holds: Callable[[str], bool], *, within: float = 8.0
) -> tuple[str, float]:
    """Scrape until `holds` is true of the scrape; the scrape and the seconds it took."""
    started = time.monotonic()
    while True:
        exposition = await scrape(http)
        if holds(exposition):
            return exposition, time.monotonic() - started
        assert time.monotonic() - started < within, exposition
        await asyncio.sleep(0.1)


async def test_a_revocation_redis_cannot_take_waits_until_the_sync_loop_lands_it(
    settings: AuthSettings, seed: Seed, redis_url: str, redis_prefix: str
) -> None:
    proxy = RedisCommandProxy(redis_url)
    proxy.start()
    environ = auth_environ(settings.database.url, proxy.url, redis_prefix, **METRICS_ON)
    environ["PORTCULLIS_SECRET_KEY"] = settings.secret_key.hex()  # the seeded signing key's
    client_id, secret = await seed.client()
    assert secret is not None
    waiting = "portcullis_revocations_waiting"
    try:
        async with AsyncTestClient(
            app=create_app(AuthSettings.from_env(environ)), base_url=ISSUER
        ) as http:
            token = (await client_credentials_grant(http, client_id, secret)).json()["access_token"]
            await scrape_until(http, lambda text: sample(text, waiting) == 0)
            before = await scrape(http)

            proxy.refusing = True
            proxy.drop_connections()
            assert await revoke(http, client_id, secret, token) == 503
            during, _ = await scrape_until(http, lambda text: sample(text, waiting) == 1)
            assert moved(before, during, "portcullis_revocations_recorded_total") == 1
            assert moved(before, during, "portcullis_revocations_published_total") == 0

            proxy.refusing = False
            _, landed = await scrape_until(http, lambda text: sample(text, waiting) == 0)
            print(f"the waiting revocation landed {landed * 1000:.0f} ms after Redis came back")
    finally:
        proxy.close()
