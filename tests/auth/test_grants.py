"""docs/security.md, grants: refresh rotation and reuse, client binding, scopes, the
password and client-credentials grants, login throttling, secrets at rest and
audiences (RFC 6749 §4-§6, RFC 8707, RFC 9700 §4.14).
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import json
import re
import threading
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any, Unpack, cast

import asyncpg
import httpx
import pytest
from litestar import Litestar
from litestar.enums import ScopeType
from litestar.testing import AsyncTestClient
from litestar.types import ASGIApp, Receive, Scope, Send
from pwdlib.hashers.argon2 import Argon2Hasher

from portcullis_auth.http.app import create_app
from portcullis_auth.runtime import AuthRuntime
from portcullis_auth.security.login_throttle import RedisLoginThrottle
from portcullis_auth.settings import AuthSettings
from portcullis_shared.client_ip import client_ip
from tests.auth.conftest import ISSUER, USER_PASSWORD, ClientOptions, Seed, basic_auth
from tests.auth.helpers import (
    TOKEN_URL,
    USER_EMAIL,
    assert_oauth_error,
    client_credentials_grant,
    execute,
    password_grant,
    query,
    refresh_grant,
    unverified_claims,
)
from tests.clock import FakeClock

BASE64URL_256_BITS = re.compile(r"^[A-Za-z0-9_-]{43,}$")


async def _login(
    http: AsyncTestClient[Litestar], client_id: str, secret: str, **params: str
) -> dict[str, Any]:
    response = await password_grant(http, client_id, secret, **params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def _refresh_ok(
    http: AsyncTestClient[Litestar], client_id: str, secret: str, refresh_token: str, **params: str
) -> dict[str, Any]:
    response = await refresh_grant(http, client_id, secret, refresh_token, **params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def _confidential_client(seed: Seed, **spec: Unpack[ClientOptions]) -> tuple[str, str]:
    client_id, secret = await seed.client(**spec)
    assert secret is not None
    return client_id, secret


async def _family_rows(settings: AuthSettings, sid: str) -> dict[str, list[Any]]:
    """revoked_at of the grant, of each refresh token and of each access token of a family."""
    grant_id = uuid.UUID(sid)
    grants = await query(settings, "SELECT revoked_at FROM grants WHERE id = :id", id=grant_id)
    refresh = await query(
        settings, "SELECT revoked_at FROM refresh_tokens WHERE grant_id = :id", id=grant_id
    )
    access = await query(
        settings, "SELECT revoked_at FROM access_tokens WHERE sid = :id", id=grant_id
    )
    return {
        "grants": [row["revoked_at"] for row in grants],
        "refresh_tokens": [row["revoked_at"] for row in refresh],
        "access_tokens": [row["revoked_at"] for row in access],
    }


def _assert_family_revoked(rows: dict[str, list[Any]], *, access_tokens: int) -> None:
    assert len(rows["grants"]) == 1
    assert rows["grants"][0] is not None, "the grant (family) was not revoked"
    assert rows["refresh_tokens"], "the family has no refresh tokens"
    assert all(value is not None for value in rows["refresh_tokens"]), rows["refresh_tokens"]
    assert len(rows["access_tokens"]) == access_tokens
    assert all(value is not None for value in rows["access_tokens"]), rows["access_tokens"]


def _assert_family_intact(rows: dict[str, list[Any]]) -> None:
    assert rows["grants"] == [None]
    assert all(value is None for value in rows["access_tokens"])


# --- Refresh rotation and reuse -------------------------------------------------------------


async def test_refresh_rotates_and_the_used_token_is_refused(
    http: AsyncTestClient[Litestar], seed: Seed
) -> None:
    await seed.user()
    client_id, secret = await _confidential_client(seed)
    rt1 = (await _login(http, client_id, secret))["refresh_token"]

    rt2 = (await _refresh_ok(http, client_id, secret, rt1))["refresh_token"]
    assert rt2 != rt1

    again = await refresh_grant(http, client_id, secret, rt1)
    assert_oauth_error(again, 400, "invalid_grant")


async def test_repeat_within_grace_while_successor_unused_keeps_the_family(
    http: AsyncTestClient[Litestar], seed: Seed, settings: AuthSettings
) -> None:
    await seed.user()
    client_id, secret = await _confidential_client(seed)
    rt1 = (await _login(http, client_id, secret))["refresh_token"]
    first = await _refresh_ok(http, client_id, secret, rt1)
    sid = unverified_claims(first["access_token"])["sid"]

    repeat = await refresh_grant(http, client_id, secret, rt1)
    assert_oauth_error(repeat, 400, "invalid_grant")
    _assert_family_intact(await _family_rows(settings, sid))

    # The successor still works: the repeat was a retry, not reuse.
    await _refresh_ok(http, client_id, secret, first["refresh_token"])


async def test_repeat_after_the_successor_was_used_revokes_the_family(
    http: AsyncTestClient[Litestar], seed: Seed, settings: AuthSettings
) -> None:
    await seed.user()
    client_id, secret = await _confidential_client(seed)
    rt1 = (await _login(http, client_id, secret))["refresh_token"]
    rt2 = (await _refresh_ok(http, client_id, secret, rt1))["refresh_token"]
    third = await _refresh_ok(http, client_id, secret, rt2)
    sid = unverified_claims(third["access_token"])["sid"]

    reuse = await refresh_grant(http, client_id, secret, rt1)
    assert_oauth_error(reuse, 400, "invalid_grant")

    after = await refresh_grant(http, client_id, secret, third["refresh_token"])
    assert_oauth_error(after, 400, "invalid_grant")
    _assert_family_revoked(await _family_rows(settings, sid), access_tokens=3)


_ANOTHER_WAITS_FOR_THIS_TRANSACTION = """
    SELECT EXISTS (
        SELECT FROM pg_locks WHERE NOT granted AND pg_backend_pid() = ANY(pg_blocking_pids(pid))
    )
"""


async def test_a_refresh_racing_a_family_revocation_waits_for_it_and_mints_nothing(
    http: AsyncTestClient[Litestar], seed: Seed, settings: AuthSettings
) -> None:
    """The revocation's count of the family's tokens must include any minted in the same
    instant: a rotation waits for a revocation under way, then finds the family gone."""
    await seed.user()
    client_id, secret = await _confidential_client(seed)
    login = await _login(http, client_id, secret)
    sid = uuid.UUID(unverified_claims(login["access_token"])["sid"])
    revoking = threading.Event()
    answered = threading.Event()
    committed_at: list[float] = []

    async def revoke() -> None:  # in a thread of its own: the test client blocks this loop
        url = settings.database.url.replace("postgresql+asyncpg", "postgresql")
        connection = await asyncpg.connect(url)
        try:
            async with connection.transaction():
                await connection.execute("UPDATE grants SET revoked_at = now() WHERE id = $1", sid)
                revoking.set()
                # A slow commit: held until the refresh waits for this transaction (or has
                # answered without waiting, which the assertion below then catches).
                deadline = time.monotonic() + 10
                while not answered.is_set() and time.monotonic() < deadline:
                    if await connection.fetchval(_ANOTHER_WAITS_FOR_THIS_TRANSACTION):
                        break
                    await asyncio.sleep(0.01)
                committed_at.append(time.monotonic())
        finally:
            await connection.close()

    revoker = threading.Thread(target=asyncio.run, args=(revoke(),))
    revoker.start()
    try:
        assert await asyncio.to_thread(revoking.wait, 10)
        answer = await refresh_grant(http, client_id, secret, login["refresh_token"])
        answered_at = time.monotonic()
    finally:
        answered.set()
        revoker.join()

    assert answered_at > committed_at[0], "rotated while the family was being revoked"
    assert_oauth_error(answer, 400, "invalid_grant")
    minted = await query(settings, "SELECT jti FROM access_tokens WHERE sid = :sid", sid=sid)
    assert len(minted) == 1  # the login's


async def test_repeat_outside_the_grace_window_revokes_the_family(
    http: AsyncTestClient[Litestar], seed: Seed, settings: AuthSettings
) -> None:
    await seed.user()
    client_id, secret = await _confidential_client(seed)
    rt1 = (await _login(http, client_id, secret))["refresh_token"]
    second = await _refresh_ok(http, client_id, secret, rt1)
    sid = unverified_claims(second["access_token"])["sid"]
    # RT1 was used 11 s ago: past the default 10 s window, though RT2 is unused.
    touched = await execute(
        settings,
        "UPDATE refresh_tokens SET used_at = now() - interval '11 seconds' WHERE token_hash = :h",
        h=hashlib.sha256(rt1.encode()).hexdigest(),
    )
    assert touched == 1

    reuse = await refresh_grant(http, client_id, secret, rt1)
    assert_oauth_error(reuse, 400, "invalid_grant")
    after = await refresh_grant(http, client_id, secret, second["refresh_token"])
    assert_oauth_error(after, 400, "invalid_grant")
    _assert_family_revoked(await _family_rows(settings, sid), access_tokens=2)


class TestWithoutGraceWindow:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, str]:
        return {"refresh_grace": "0"}

    async def test_any_repeat_revokes_the_family(
        self, http: AsyncTestClient[Litestar], seed: Seed, settings: AuthSettings
    ) -> None:
        await seed.user()
        client_id, secret = await _confidential_client(seed)
        rt1 = (await _login(http, client_id, secret))["refresh_token"]
        second = await _refresh_ok(http, client_id, secret, rt1)
        sid = unverified_claims(second["access_token"])["sid"]

        reuse = await refresh_grant(http, client_id, secret, rt1)
        assert_oauth_error(reuse, 400, "invalid_grant")

        # The unused successor dies with its family.
        after = await refresh_grant(http, client_id, secret, second["refresh_token"])
        assert_oauth_error(after, 400, "invalid_grant")
        _assert_family_revoked(await _family_rows(settings, sid), access_tokens=2)


def _in_flight_together(
    http: AsyncTestClient[Litestar],
    app: Litestar,
    count: int,
    data: dict[str, str],
    headers: dict[str, str],
) -> list[httpx.Response]:
    """`count` identical token requests in flight at once, on the app's own event loop.

    AsyncTestClient hands each request to the app's loop and blocks until it is answered,
    so `asyncio.gather` over it would run them one after another.
    """

    async def burst() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]  # an ASGI app
        async with httpx.AsyncClient(transport=transport, base_url=ISSUER) as client:
            requests = (client.post(TOKEN_URL, data=data, headers=headers) for _ in range(count))
            return list(await asyncio.gather(*requests))

    with http.portal() as portal:
        return portal.call(burst)


async def test_twenty_concurrent_refreshes_of_one_token_have_exactly_one_winner(
    http: AsyncTestClient[Litestar], app: Litestar, seed: Seed, settings: AuthSettings
) -> None:
    await seed.user()
    client_id, secret = await _confidential_client(seed)
    login = await _login(http, client_id, secret)
    sid = unverified_claims(login["access_token"])["sid"]

    responses = _in_flight_together(
        http,
        app,
        20,
        {"grant_type": "refresh_token", "refresh_token": login["refresh_token"]},
        basic_auth(client_id, secret),
    )

    statuses = sorted(response.status_code for response in responses)
    assert statuses == [200] + [400] * 19, statuses
    for response in responses:
        if response.status_code == 400:
            assert_oauth_error(response, 400, "invalid_grant")
    # Exactly one successor was stored: the first token and the winner's.
    rows = await query(
        settings, "SELECT count(*) AS n FROM refresh_tokens WHERE grant_id = :id", id=uuid.UUID(sid)
    )
    assert rows[0]["n"] == 2
    # The losers were retries inside the grace window: the winner's token still works.
    (winner,) = (response for response in responses if response.status_code == 200)
    await _refresh_ok(http, client_id, secret, winner.json()["refresh_token"])


async def test_refresh_token_works_only_for_the_client_it_was_issued_to(
    http: AsyncTestClient[Litestar], seed: Seed, settings: AuthSettings
) -> None:
    await seed.user()
    owner_id, owner_secret = await _confidential_client(seed, name="owner")
    other_id, other_secret = await _confidential_client(seed, name="other")
    login = await _login(http, owner_id, owner_secret)

    stolen = await refresh_grant(http, other_id, other_secret, login["refresh_token"])
    assert_oauth_error(stolen, 400, "invalid_grant")

    # Neither used up nor revoked: the owner can still refresh it.
    _assert_family_intact(
        await _family_rows(settings, unverified_claims(login["access_token"])["sid"])
    )
    refreshed = await _refresh_ok(http, owner_id, owner_secret, login["refresh_token"])
    assert unverified_claims(refreshed["access_token"])["client_id"] == owner_id


async def test_narrowing_scope_on_refresh_narrows_the_access_token_not_the_family(
    http: AsyncTestClient[Litestar], seed: Seed, settings: AuthSettings
) -> None:
    await seed.user()
    client_id, secret = await _confidential_client(seed)
    login = await _login(http, client_id, secret, scope="read-posts write-posts")
    assert login["scope"] == "read-posts write-posts"

    narrowed = await _refresh_ok(
        http, client_id, secret, login["refresh_token"], scope="read-posts"
    )
    assert narrowed["scope"] == "read-posts"
    assert unverified_claims(narrowed["access_token"])["scope"] == "read-posts"

    full = await _refresh_ok(http, client_id, secret, narrowed["refresh_token"])
    assert full["scope"] == "read-posts write-posts"
    assert unverified_claims(full["access_token"])["scope"] == "read-posts write-posts"
    grant = await query(
        settings,
        "SELECT scopes FROM grants WHERE id = :id",
        id=uuid.UUID(unverified_claims(full["access_token"])["sid"]),
    )
    assert sorted(grant[0]["scopes"]) == ["read-posts", "write-posts"]


async def test_widening_scope_on_refresh_is_invalid_scope_and_does_not_use_the_token(
    http: AsyncTestClient[Litestar], seed: Seed, settings: AuthSettings
) -> None:
    await seed.user()
    client_id, secret = await _confidential_client(seed)
    login = await _login(http, client_id, secret, scope="read-posts")

    widened = await refresh_grant(
        http, client_id, secret, login["refresh_token"], scope="read-posts write-posts"
    )
    assert_oauth_error(widened, 400, "invalid_scope")

    rows = await query(
        settings,
        "SELECT used_at FROM refresh_tokens WHERE token_hash = :h",
        h=hashlib.sha256(login["refresh_token"].encode()).hexdigest(),
    )
    assert [row["used_at"] for row in rows] == [None]
    refreshed = await _refresh_ok(http, client_id, secret, login["refresh_token"])
    assert refreshed["scope"] == "read-posts"


@pytest.mark.parametrize(
    "expire",
    [
        pytest.param(
            "UPDATE refresh_tokens SET expires_at = now() - interval '1 second'",
            id="refresh-token-expired",
        ),
        pytest.param(
            "UPDATE grants SET expires_at = now() - interval '1 second'", id="family-expired"
        ),
    ],
)
async def test_refresh_token_past_its_lifetime_is_invalid_grant(
    http: AsyncTestClient[Litestar], seed: Seed, settings: AuthSettings, expire: str
) -> None:
    await seed.user()
    client_id, secret = await _confidential_client(seed)
    login = await _login(http, client_id, secret)
    assert await execute(settings, expire) == 1

    response = await refresh_grant(http, client_id, secret, login["refresh_token"])
    assert_oauth_error(response, 400, "invalid_grant")


async def test_disabled_user_cannot_refresh(
    http: AsyncTestClient[Litestar], seed: Seed, settings: AuthSettings
) -> None:
    user_id = await seed.user()
    client_id, secret = await _confidential_client(seed)
    login = await _login(http, client_id, secret)
    assert (
        await execute(
            settings, "UPDATE users SET disabled_at = now() WHERE id = :id", id=uuid.UUID(user_id)
        )
        == 1
    )

    response = await refresh_grant(http, client_id, secret, login["refresh_token"])
    assert_oauth_error(response, 400, "invalid_grant")
    # Nor can the disabled user log in again.
    again = await password_grant(http, client_id, secret)
    assert_oauth_error(again, 400, "invalid_grant")


async def test_user_no_longer_admin_cannot_refresh_an_admin_grant(
    http: AsyncTestClient[Litestar], seed: Seed, settings: AuthSettings
) -> None:
    user_id = await seed.user(admin=True)
    client_id, secret = await _confidential_client(seed)
    login = await _login(http, client_id, secret, scope="read-posts admin")
    assert login["scope"] == "admin read-posts"
    await execute(
        settings, "UPDATE users SET is_admin = false WHERE id = :id", id=uuid.UUID(user_id)
    )

    response = await refresh_grant(http, client_id, secret, login["refresh_token"])
    assert_oauth_error(response, 400, "invalid_grant")


# --- Client credentials ----------------------------------------------------------------------


async def test_client_credentials_token_has_no_refresh_token_and_speaks_for_the_client(
    http: AsyncTestClient[Litestar], seed: Seed, settings: AuthSettings
) -> None:
    client_id, secret = await _confidential_client(seed)

    response = await client_credentials_grant(http, client_id, secret)

    assert response.status_code == 200, response.text
    body = response.json()
    assert "refresh_token" not in body
    claims = unverified_claims(body["access_token"])
    assert claims["sub"] == client_id
    assert claims["client_id"] == client_id
    with pytest.raises(ValueError, match="hexadecimal UUID"):
        uuid.UUID(claims["sub"])
    rows = await query(
        settings,
        "SELECT user_id, client_id FROM access_tokens WHERE jti = :jti",
        jti=uuid.UUID(claims["jti"]),
    )
    assert [dict(row) for row in rows] == [{"user_id": None, "client_id": client_id}]
    assert await query(settings, "SELECT id FROM grants") == []


async def test_client_credentials_only_for_clients_allowed_it(
    http: AsyncTestClient[Litestar], seed: Seed
) -> None:
    client_id, secret = await _confidential_client(seed, grant_types=("password", "refresh_token"))

    response = await client_credentials_grant(http, client_id, secret)

    assert_oauth_error(response, 400, "unauthorized_client")


# --- Password grant --------------------------------------------------------------------------


async def test_password_grant_only_for_clients_allowed_it(
    http: AsyncTestClient[Litestar], seed: Seed
) -> None:
    await seed.user()
    client_id, secret = await _confidential_client(seed, grant_types=("client_credentials",))

    response = await password_grant(http, client_id, secret)

    assert_oauth_error(response, 400, "unauthorized_client")


@pytest.mark.parametrize(
    "params",
    [
        pytest.param(
            {"grant_type": "password", "username": USER_EMAIL, "password": USER_PASSWORD},
            id="password",
        ),
        pytest.param({"grant_type": "client_credentials"}, id="client_credentials"),
    ],
)
async def test_public_client_cannot_use_password_or_client_credentials(
    http: AsyncTestClient[Litestar], seed: Seed, settings: AuthSettings, params: dict[str, str]
) -> None:
    await seed.user()
    client_id, secret = await seed.client(
        public=True, grant_types=("urn:ietf:params:oauth:grant-type:device_code",)
    )
    assert secret is None
    # The service refuses to register such a client; the grant must refuse it too, even
    # when a bad row or a later edit gives a public client these grants.
    await execute(
        settings,
        "UPDATE oauth_clients SET grant_types = CAST(:g AS json) WHERE id = :id",
        g=json.dumps(["password", "client_credentials", "refresh_token"]),
        id=client_id,
    )

    response = await http.post(TOKEN_URL, data={**params, "client_id": client_id})

    assert_oauth_error(response, 400, "unauthorized_client")


class TestLoginAnswers:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, str]:
        return {"login_max_failures": "100"}

    async def test_unknown_user_and_wrong_password_answer_the_same_in_about_the_same_time(
        self, http: AsyncTestClient[Litestar], seed: Seed, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The time is the work's: both cost one argon2 verify, against hashes of one cost
        (the unknown user's against the dummy hash), which is checked instead of a stopwatch."""
        await seed.user()
        client_id, secret = await _confidential_client(seed)
        verified: list[str] = []  # the cost of each hash a password was verified against
        verify = Argon2Hasher.verify

        def counted_verify(
            hasher: Argon2Hasher, password: str | bytes, stored: str | bytes
        ) -> bool:
            verified.append(_argon2_cost(stored))
            return verify(hasher, password, stored)

        monkeypatch.setattr(Argon2Hasher, "verify", counted_verify)

        unknown = await password_grant(http, client_id, secret, username="nobody@example.com")
        unknown_work = list(verified)
        verified.clear()
        wrong = await password_grant(http, client_id, secret, password="not the password")
        wrong_work = list(verified)

        assert unknown.status_code == wrong.status_code == 400
        assert unknown.json() == wrong.json()
        assert_oauth_error(unknown, 400, "invalid_grant")
        assert unknown.headers.get("www-authenticate") == wrong.headers.get("www-authenticate")
        assert len(wrong_work) == 1, wrong_work
        assert unknown_work == wrong_work


def _argon2_cost(stored: str | bytes) -> str:
    """An argon2 hash's algorithm, version and cost (`$argon2id$v=19$m=…,t=…,p=…`): what a
    verify against it costs, without its salt and digest."""
    text = stored.decode() if isinstance(stored, bytes) else stored
    return "$".join(text.split("$")[:4])


# --- Login throttling ------------------------------------------------------------------------


class TestLoginThrottle:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, str]:
        return {"login_max_failures": "3"}

    async def _fail(
        self, http: AsyncTestClient[Litestar], client: tuple[str, str], username: str, times: int
    ) -> None:
        for _ in range(times):
            response = await password_grant(
                http, *client, username=username, password="wrong password"
            )
            assert_oauth_error(response, 400, "invalid_grant")

    async def test_repeated_failures_back_off_with_429_and_retry_after(
        self, http: AsyncTestClient[Litestar], seed: Seed
    ) -> None:
        await seed.user()
        client = await _confidential_client(seed)
        await self._fail(http, client, USER_EMAIL, 3)

        blocked = await password_grant(http, *client)

        assert blocked.status_code == 429, blocked.text
        assert int(blocked.headers["retry-after"]) > 0
        assert set(blocked.json()) == {"error", "error_description"}
        assert blocked.headers["cache-control"] == "no-store"

    async def test_failures_for_an_unknown_user_are_throttled_too(
        self, http: AsyncTestClient[Litestar], seed: Seed
    ) -> None:
        client = await _confidential_client(seed)
        await self._fail(http, client, "ghost@example.com", 3)

        blocked = await password_grant(http, *client, username="ghost@example.com")

        assert blocked.status_code == 429, blocked.text
        assert int(blocked.headers["retry-after"]) > 0

    async def test_username_is_normalised_before_counting(
        self, http: AsyncTestClient[Litestar], seed: Seed
    ) -> None:
        await seed.user()
        client = await _confidential_client(seed)
        for username in ("ADA@example.com", " ada@EXAMPLE.com", "Ada@Example.Com "):
            await self._fail(http, client, username, 1)

        blocked = await password_grant(http, *client)

        assert blocked.status_code == 429, blocked.text

    async def test_another_username_from_the_same_ip_is_not_blocked(
        self, http: AsyncTestClient[Litestar], seed: Seed
    ) -> None:
        await seed.user()
        await seed.user("grace@example.com")
        client = await _confidential_client(seed)
        await self._fail(http, client, USER_EMAIL, 3)
        assert (await password_grant(http, *client)).status_code == 429

        other = await password_grant(http, *client, username="grace@example.com")

        assert other.status_code == 200, other.text

    async def test_x_forwarded_for_is_ignored_from_an_untrusted_peer(
        self, http: AsyncTestClient[Litestar], seed: Seed
    ) -> None:
        await seed.user()
        client = await _confidential_client(seed)
        for index in range(3):
            response = await password_grant(
                http,
                *client,
                password="wrong password",
                forwarded_for=f"203.0.113.{index}",
            )
            assert_oauth_error(response, 400, "invalid_grant")

        # A fresh forwarded address does not reset the count: the peer is what counts.
        blocked = await password_grant(http, *client, forwarded_for="198.51.100.7")

        assert blocked.status_code == 429, blocked.text


class TestLoginBackoffEnds:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, str]:
        return {"login_max_failures": "3", "login_max_backoff": "1"}

    @pytest.fixture
    def clock(self) -> FakeClock:
        return FakeClock()

    @pytest.fixture
    async def app(self, settings: AuthSettings, seed: Seed, clock: FakeClock) -> Litestar:
        """The auth service with its login throttle on the test's clock."""
        runtime = AuthRuntime.create(settings)
        assert runtime.redis is not None
        runtime.throttle = RedisLoginThrottle(
            runtime.redis, settings.login, settings.redis.key_prefix, clock=clock
        )
        return create_app(runtime=runtime)

    async def test_back_off_ends_and_the_account_is_not_locked(
        self, http: AsyncTestClient[Litestar], seed: Seed, clock: FakeClock
    ) -> None:
        await seed.user()
        client_id, secret = await _confidential_client(seed)
        for _ in range(3):
            wrong = await password_grant(http, client_id, secret, password="wrong password")
            assert_oauth_error(wrong, 400, "invalid_grant")
        blocked = await password_grant(http, client_id, secret)
        assert blocked.status_code == 429, blocked.text
        assert blocked.headers["retry-after"] == "1"

        clock.advance(1.2)
        allowed = await password_grant(http, client_id, secret)

        assert allowed.status_code == 200, allowed.text


def _with_peer(app: Litestar, host: str) -> ASGIApp:
    """The app as seen from a TCP peer at `host` (the test client's peer is "testclient")."""

    async def asgi(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == ScopeType.HTTP:
            scope = cast("Scope", {**scope, "client": (host, 40000)})
        await app(scope, receive, send)

    return asgi


@pytest.fixture
async def proxied(app: Litestar) -> AsyncIterator[AsyncTestClient[ASGIApp]]:
    """A test client whose TCP peer is 10.0.0.5, a proxy in `trusted_proxies`."""
    async with AsyncTestClient(app=_with_peer(app, "10.0.0.5"), base_url=ISSUER) as client:
        yield client


class TestTrustedProxy:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, str]:
        return {"login_max_failures": "3", "trusted_proxies": "10.0.0.0/8"}

    async def test_x_forwarded_for_from_a_trusted_proxy_names_the_client(
        self, proxied: AsyncTestClient[ASGIApp], seed: Seed
    ) -> None:
        await seed.user()
        client_id, secret = await _confidential_client(seed)

        async def attempt(forwarded_for: str, password: str) -> httpx.Response:
            return await proxied.post(
                TOKEN_URL,
                data={"grant_type": "password", "username": USER_EMAIL, "password": password},
                headers={**basic_auth(client_id, secret), "X-Forwarded-For": forwarded_for},
            )

        for _ in range(3):
            assert_oauth_error(await attempt("203.0.113.9", "wrong"), 400, "invalid_grant")
        assert (await attempt("203.0.113.9", USER_PASSWORD)).status_code == 429
        # Behind the same proxy, another client address has its own count.
        other = await attempt("198.51.100.7", USER_PASSWORD)
        assert other.status_code == 200, other.text

    async def test_a_forged_x_forwarded_for_line_before_the_proxys_own_is_not_believed(
        self, proxied: AsyncTestClient[ASGIApp], seed: Seed
    ) -> None:
        """A proxy that adds its own X-Forwarded-For line (rather than appending to the
        client's) leaves the client's forgery first: the lines are one list (RFC 9110
        §5.3), read from the right."""
        await seed.user()
        client_id, secret = await _confidential_client(seed)

        async def attempt(forged: str, password: str) -> httpx.Response:
            return await proxied.post(
                TOKEN_URL,
                data={"grant_type": "password", "username": USER_EMAIL, "password": password},
                headers=[
                    *basic_auth(client_id, secret).items(),
                    ("X-Forwarded-For", forged),
                    ("X-Forwarded-For", "203.0.113.9"),  # the proxy's line
                ],
            )

        for index in range(3):
            wrong = await attempt(f"198.51.100.{index}", "wrong")
            assert_oauth_error(wrong, 400, "invalid_grant")
        assert (await attempt("198.51.100.77", USER_PASSWORD)).status_code == 429


TRUSTED = (ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("fd00::/8"))


@pytest.mark.parametrize(
    ("peer", "forwarded_for", "expected"),
    [
        pytest.param("192.0.2.1", "203.0.113.9", "192.0.2.1", id="untrusted-peer-ignored"),
        pytest.param("10.0.0.5", "203.0.113.9", "203.0.113.9", id="trusted-peer-honoured"),
        pytest.param(
            "10.0.0.5", "203.0.113.9, 10.1.2.3", "203.0.113.9", id="chain-of-trusted-proxies"
        ),
        pytest.param(
            "10.0.0.5",
            "198.51.100.1, 203.0.113.9",
            "203.0.113.9",
            id="spoofed-left-hop-not-believed",
        ),
        pytest.param("fd00::1", "2001:db8::7", "2001:db8::7", id="ipv6-trusted-peer"),
        pytest.param("10.0.0.5", "not-an-ip", "10.0.0.5", id="garbled-header"),
        pytest.param("10.0.0.5", None, "10.0.0.5", id="no-header"),
        pytest.param("testclient", "203.0.113.9", "testclient", id="peer-not-an-ip"),
    ],
)
def test_client_ip_believes_x_forwarded_for_only_from_trusted_proxies(
    peer: str, forwarded_for: str | None, expected: str
) -> None:
    assert client_ip(peer, forwarded_for, TRUSTED) == expected


def test_client_ip_with_no_trusted_proxies_is_the_peer() -> None:
    assert client_ip("10.0.0.5", "203.0.113.9", ()) == "10.0.0.5"
    assert client_ip(None, "203.0.113.9", TRUSTED) == "unknown"


# --- Secrets at rest -------------------------------------------------------------------------


async def test_refresh_tokens_and_client_secrets_are_256_bit_and_stored_hashed(
    http: AsyncTestClient[Litestar], seed: Seed, settings: AuthSettings
) -> None:
    await seed.user()
    client_id, secret = await _confidential_client(seed)
    rt1 = (await _login(http, client_id, secret))["refresh_token"]
    rt2 = (await _refresh_ok(http, client_id, secret, rt1))["refresh_token"]

    for value in (secret, rt1, rt2):
        assert BASE64URL_256_BITS.match(value), value
    assert len({secret, rt1, rt2}) == 3

    (client_row,) = await query(
        settings, "SELECT secret_hash FROM oauth_clients WHERE id = :id", id=client_id
    )
    assert client_row["secret_hash"] != secret
    assert client_row["secret_hash"] == hashlib.sha256(secret.encode()).hexdigest()

    stored = {
        row["token_hash"] for row in await query(settings, "SELECT token_hash FROM refresh_tokens")
    }
    assert stored == {hashlib.sha256(token.encode()).hexdigest() for token in (rt1, rt2)}
    assert not stored & {rt1, rt2}


# --- Scopes and audiences --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("client_scopes", "requested"),
    [
        pytest.param(("read-posts", "write-posts"), "read-posts no-such-scope", id="unknown"),
        pytest.param(("read-posts",), "read-posts write-posts", id="not-allowed-for-client"),
        pytest.param(("read-posts", "admin"), "admin", id="privileged-for-non-admin"),
    ],
)
async def test_scope_the_client_or_user_may_not_have_is_invalid_scope(
    http: AsyncTestClient[Litestar], seed: Seed, client_scopes: tuple[str, ...], requested: str
) -> None:
    await seed.user()
    client_id, secret = await _confidential_client(
        seed, scopes=client_scopes, default_scopes=("read-posts",)
    )

    response = await password_grant(http, client_id, secret, scope=requested)

    assert_oauth_error(response, 400, "invalid_scope")


async def test_client_credentials_scope_not_allowed_for_the_client_is_invalid_scope(
    http: AsyncTestClient[Litestar], seed: Seed
) -> None:
    client_id, secret = await _confidential_client(
        seed, scopes=("read-posts",), default_scopes=("read-posts",)
    )

    response = await client_credentials_grant(http, client_id, secret, scope="admin")

    assert_oauth_error(response, 400, "invalid_scope")


async def test_admin_user_is_granted_the_admin_scope(
    http: AsyncTestClient[Litestar], seed: Seed
) -> None:
    await seed.user(admin=True)
    client_id, secret = await _confidential_client(seed)

    body = await _login(http, client_id, secret, scope="admin read-posts")

    assert body["scope"] == "admin read-posts"
    assert unverified_claims(body["access_token"])["scope"] == "admin read-posts"


async def test_no_scope_means_the_client_default_scopes(
    http: AsyncTestClient[Litestar], seed: Seed
) -> None:
    await seed.user()
    client_id, secret = await _confidential_client(
        seed, default_scopes=("read-posts", "write-posts")
    )

    password = await _login(http, client_id, secret)
    machine = await client_credentials_grant(http, client_id, secret)

    assert password["scope"] == "read-posts write-posts"
    assert unverified_claims(password["access_token"])["scope"] == "read-posts write-posts"
    assert machine.status_code == 200, machine.text
    assert machine.json()["scope"] == "read-posts write-posts"


async def test_default_privileged_scope_is_left_out_for_a_non_admin_user(
    http: AsyncTestClient[Litestar], seed: Seed
) -> None:
    await seed.user()
    client_id, secret = await _confidential_client(seed, default_scopes=("read-posts", "admin"))

    body = await _login(http, client_id, secret)

    assert body["scope"] == "read-posts"


@pytest.mark.parametrize("grant", ["password", "client_credentials"])
async def test_resource_parameter_sets_the_audience(
    http: AsyncTestClient[Litestar], seed: Seed, grant: str
) -> None:
    await seed.user()
    client_id, secret = await _confidential_client(seed, audiences=("posts", "billing"))

    async def token(**params: str) -> httpx.Response:
        if grant == "password":
            return await password_grant(http, client_id, secret, **params)
        return await client_credentials_grant(http, client_id, secret, **params)

    named = await token(resource="billing")
    assert named.status_code == 200, named.text
    assert unverified_claims(named.json()["access_token"])["aud"] == "billing"

    default = await token()
    assert default.status_code == 200, default.text
    assert unverified_claims(default.json()["access_token"])["aud"] == "posts"

    refused = await token(resource="https://evil.example")
    assert_oauth_error(refused, 400, "invalid_target")


async def test_refresh_keeps_the_audience_of_the_grant(
    http: AsyncTestClient[Litestar], seed: Seed
) -> None:
    await seed.user()
    client_id, secret = await _confidential_client(seed, audiences=("posts", "billing"))
    login = await _login(http, client_id, secret, resource="billing")

    refreshed = await _refresh_ok(http, client_id, secret, login["refresh_token"])
    assert unverified_claims(refreshed["access_token"])["aud"] == "billing"

    refused = await refresh_grant(
        http, client_id, secret, refreshed["refresh_token"], resource="https://evil.example"
    )
    assert_oauth_error(refused, 400, "invalid_target")
