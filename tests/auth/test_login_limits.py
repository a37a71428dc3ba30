"""Limits on password logins: per (username, IP), per IP, and on the hashing queue."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from portcullis_auth.security.login_throttle import MemoryLoginThrottle, throttled_address
from portcullis_auth.settings import LoginSettings
from tests.auth.conftest import ISSUER, USER_PASSWORD, Seed, basic_auth

TOKEN_URL = "/oauth/token"
Http = AsyncTestClient[Litestar]


def from_peers(
    http: Http, app: Litestar, requests: list[tuple[str, dict[str, str], dict[str, str]]]
) -> list[httpx.Response]:
    """Token requests from the given peer addresses, all in flight at once on the app's loop."""

    async def send() -> list[httpx.Response]:
        async def one(peer: str, data: dict[str, str], headers: dict[str, str]) -> httpx.Response:
            transport = httpx.ASGITransport(app=app, client=(peer, 40000))  # type: ignore[arg-type]
            async with httpx.AsyncClient(transport=transport, base_url=ISSUER) as client:
                return await client.post(TOKEN_URL, data=data, headers=headers)

        return list(await asyncio.gather(*(one(*request) for request in requests)))

    with http.portal() as portal:
        return portal.call(send)


def login(username: str, password: str = "a guess") -> dict[str, str]:  # noqa: S107
    return {"grant_type": "password", "username": username, "password": password}


@pytest.mark.parametrize("settings_overrides", [{"login_max_failures_per_ip": "3"}], ids=["ip-3"])
async def test_guesses_at_many_usernames_from_one_ip_back_off(
    http: Http, app: Litestar, seed: Seed
) -> None:
    await seed.user("ada@example.com")
    client_id, secret = await seed.client()
    assert secret is not None
    auth = basic_auth(client_id, secret)
    attacker, neighbour = "203.0.113.7", "198.51.100.9"

    guesses = [
        from_peers(http, app, [(attacker, login(f"user{n}@example.com"), auth)])[0]
        for n in range(3)
    ]
    assert [r.status_code for r in guesses] == [400, 400, 400]
    (blocked,) = from_peers(http, app, [(attacker, login("ada@example.com", USER_PASSWORD), auth)])
    assert blocked.status_code == 429, blocked.text
    assert blocked.json()["error"] == "temporarily_unavailable"
    assert int(blocked.headers["retry-after"]) >= 1
    # Another address is not held back by the attacker's guesses.
    (elsewhere,) = from_peers(
        http, app, [(neighbour, login("ada@example.com", USER_PASSWORD), auth)]
    )
    assert elsewhere.status_code == 200, elsewhere.text


@pytest.mark.parametrize("settings_overrides", [{"login_max_failures_per_ip": "3"}], ids=["ip-3"])
async def test_successful_logins_do_not_count_against_an_ip(
    http: Http, app: Litestar, seed: Seed
) -> None:
    await seed.user("ada@example.com")
    client_id, secret = await seed.client()
    assert secret is not None
    office = "192.0.2.10"
    right = [
        from_peers(
            http,
            app,
            [(office, login("ada@example.com", USER_PASSWORD), basic_auth(client_id, secret))],
        )[0]
        for _ in range(5)
    ]
    assert [r.status_code for r in right] == [200] * 5


@pytest.mark.parametrize("settings_overrides", [{"password_queue": "2"}], ids=["queue-2"])
async def test_password_checks_past_the_queue_bound_answer_503(
    http: Http, app: Litestar, seed: Seed
) -> None:
    await seed.user("ada@example.com")
    client_id, secret = await seed.client()
    assert secret is not None
    auth = basic_auth(client_id, secret)

    burst = from_peers(
        http, app, [(f"192.0.2.{n}", login(f"user{n}@example.com"), auth) for n in range(12)]
    )

    statuses = sorted(r.status_code for r in burst)
    busy = [r for r in burst if r.status_code == 503]
    assert busy, statuses
    assert set(statuses) == {400, 503}, statuses
    assert len(burst) - len(busy) <= 3, statuses  # one running and two waiting, at most
    for response in busy:
        assert response.json()["error"] == "temporarily_unavailable"
        assert int(response.headers["retry-after"]) >= 1
        assert response.headers["cache-control"] == "no-store"
    # Once the burst is over, logins are checked again.
    (after,) = from_peers(
        http, app, [("192.0.2.99", login("ada@example.com", USER_PASSWORD), auth)]
    )
    assert after.status_code == 200, after.text


@pytest.mark.parametrize("field", ["username", "password", "scope", "client_id"])
async def test_a_nul_character_in_a_token_request_is_invalid_request(
    http: Http, seed: Seed, field: str
) -> None:
    await seed.user("ada@example.com")
    client_id, secret = await seed.client()
    assert secret is not None
    # client_secret_post, so that every field reaches a lookup.
    data = {
        **login("ada@example.com", USER_PASSWORD),
        "client_id": client_id,
        "client_secret": secret,
    }
    data[field] = data.get(field, "read-posts") + "\x00"
    response = await http.post(TOKEN_URL, data=data)
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_request"


@pytest.mark.parametrize("settings_overrides", [{"login_max_failures_per_ip": "3"}], ids=["ip-3"])
async def test_ipv6_callers_count_by_their_subscriber_prefix(
    http: Http, app: Litestar, seed: Seed
) -> None:
    """One subscriber holds a whole /64: stepping through its addresses changes nothing."""
    client_id, secret = await seed.client()
    assert secret is not None
    auth = basic_auth(client_id, secret)
    for n in range(3):
        (guess,) = from_peers(http, app, [(f"2001:db8:1:2::{n + 1}", login(f"u{n}@x.test"), auth)])
        assert guess.status_code == 400
    (same_prefix,) = from_peers(http, app, [("2001:db8:1:2:ffff::9", login("v@x.test"), auth)])
    assert same_prefix.status_code == 429, same_prefix.text
    (other_prefix,) = from_peers(http, app, [("2001:db8:1:3::1", login("v@x.test"), auth)])
    assert other_prefix.status_code == 400, other_prefix.text


@pytest.mark.parametrize(
    ("address", "counted_as"),
    [
        ("203.0.113.7", "203.0.113.7"),
        ("::ffff:203.0.113.7", "203.0.113.7"),
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
        ("2001:DB8:1:2::1", "2001:db8:1:2::/64"),
        ("unknown", "unknown"),
    ],
)
def test_an_address_is_counted_in_one_spelling(address: str, counted_as: str) -> None:
    assert throttled_address(address) == counted_as


async def test_the_in_memory_throttle_counts_per_ip_as_redis_does() -> None:
    """The embedded default's throttle: the same rules without Redis."""
    throttle = MemoryLoginThrottle(LoginSettings(max_failures=5, max_failures_per_ip=3))
    for n in range(3):
        assert await throttle.begin_attempt(f"user{n}@x.test", "203.0.113.7") == 0
    assert await throttle.begin_attempt("ada@x.test", "203.0.113.7") > 0
    assert await throttle.begin_attempt("ada@x.test", "198.51.100.1") == 0
    # A success takes its own attempt back; an unchecked attempt counts for nothing.
    await throttle.succeeded("ada@x.test", "198.51.100.1")
    for n in range(2):
        assert await throttle.begin_attempt(f"x{n}@x.test", "198.51.100.1") == 0
        await throttle.withdraw(f"x{n}@x.test", "198.51.100.1")
    for n in range(3):
        assert await throttle.begin_attempt(f"y{n}@x.test", "198.51.100.1") == 0
    assert await throttle.begin_attempt("z@x.test", "198.51.100.1") > 0
