"""Personal access tokens and logout, in-process against real Postgres and Redis.

A personal access token is minted only with a user's token from a
first-party login (never with a personal access token, never with client
credentials), only with scopes the caller holds, shown once, listed without
the token, and revoked one by one. Logout revokes the token used and its
whole family.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from datetime import datetime
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from litestar import Litestar
from litestar.testing import AsyncTestClient

from portcullis_auth.repositories.tokens import TokenRepository
from portcullis_auth.settings import DAY, AuthSettings
from tests.auth.conftest import USER_PASSWORD, Seed, basic_auth
from tests.auth.helpers import query

READ, WRITE, ADMIN = "read-posts", "write-posts", "admin"
PATS = "/oauth/personal-access-tokens"

Http = AsyncTestClient[Litestar]
Client = tuple[str, str | None]


def claims_of(token: str) -> dict[str, Any]:
    """The JWT payload, read without checking the signature."""
    segment = token.split(".")[1]
    payload: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    )
    return payload


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def token_request(http: Http, client: Client, **data: str) -> dict[str, Any]:
    client_id, secret = client
    assert secret is not None
    response = await http.post("/oauth/token", data=data, headers=basic_auth(client_id, secret))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def login(
    http: Http,
    client: Client,
    email: str = "ada@example.com",
    scope: str = f"{READ} {WRITE}",
    **extra: str,
) -> dict[str, Any]:
    return await token_request(
        http,
        client,
        grant_type="password",
        username=email,
        password=USER_PASSWORD,
        scope=scope,
        **extra,
    )


async def create_pat(http: Http, token: str, **body: object) -> httpx.Response:
    return await http.post(
        PATS, json={"name": "ci", "scopes": [READ], **body}, headers=bearer(token)
    )


def assert_bearer_error(response: httpx.Response, status: int, error: str | None) -> None:
    assert response.status_code == status, response.text
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith('Bearer realm="portcullis"'), challenge
    if error is None:
        assert "error=" not in challenge
    else:
        assert f'error="{error}"' in challenge, challenge


def assert_oauth_error(response: httpx.Response, status: int, error: str) -> None:
    assert response.status_code == status, response.text
    assert response.json()["error"] == error, response.text


@pytest.fixture
async def ada(seed: Seed) -> str:
    return await seed.user("ada@example.com")


@pytest.fixture
async def bob(seed: Seed) -> str:
    return await seed.user("bob@example.com")


@pytest.fixture
async def first_party(seed: Seed) -> Client:
    """The first-party password client (`portcullis install` makes one like it)."""
    return await seed.client(
        name="first party", grant_types=("password", "refresh_token"), first_party=True
    )


@pytest.fixture
async def pat_client(seed: Seed) -> str:
    client_id, _ = await seed.client(
        name="personal access", grant_types=(), personal_access=True, first_party=True
    )
    return client_id


@pytest.fixture
async def ada_token(http: Http, ada: str, first_party: Client, pat_client: str) -> str:
    token: str = (await login(http, first_party))["access_token"]
    return token


# --- creating -------------------------------------------------------------------


async def test_creating_a_personal_access_token(
    http: Http, ada: str, ada_token: str, pat_client: str, settings: AuthSettings
) -> None:
    before = time.time()
    response = await create_pat(http, ada_token, name="deploy script", scopes=[READ, WRITE])

    assert response.status_code == 201, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert set(body) == {"id", "name", "scopes", "access_token", "expires_at"}
    assert body["name"] == "deploy script"
    assert sorted(body["scopes"]) == [READ, WRITE]
    claims = claims_of(body["access_token"])
    assert claims["sid"] == body["id"]
    assert claims["sub"] == ada
    assert claims["client_id"] == pat_client
    assert set(claims["scope"].split()) == {READ, WRITE}
    # Default lifetime: PORTCULLIS_PAT_TTL (a year), and expires_at says the same as exp.
    expires_at = datetime.fromisoformat(body["expires_at"]).timestamp()
    assert abs(expires_at - claims["exp"]) <= 1
    assert (
        before + settings.tokens.pat_ttl - 5
        <= expires_at
        <= time.time() + settings.tokens.pat_ttl + 5
    )


async def test_a_personal_access_token_with_its_own_lifetime(http: Http, ada_token: str) -> None:
    response = await create_pat(http, ada_token, expires_in=3600)
    assert response.status_code == 201, response.text
    claims = claims_of(response.json()["access_token"])
    assert claims["exp"] - claims["iat"] == 3600


async def test_the_token_is_shown_once_and_never_listed(http: Http, ada_token: str) -> None:
    created = (await create_pat(http, ada_token, name="laptop")).json()

    listed = await http.get(PATS, headers=bearer(ada_token))

    assert listed.status_code == 200, listed.text
    assert created["access_token"] not in listed.text
    assert [item["id"] for item in listed.json()] == [created["id"]]
    (item,) = listed.json()
    assert "access_token" not in item
    assert item["name"] == "laptop"
    assert item["scopes"] == [READ]


async def test_scopes_beyond_the_callers_token_are_refused(
    http: Http, ada: str, first_party: Client, pat_client: str
) -> None:
    read_only = (await login(http, first_party, scope=READ))["access_token"]
    response = await create_pat(http, read_only, scopes=[READ, WRITE])
    assert_oauth_error(response, 400, "invalid_scope")
    assert "access_token" not in response.text
    listed = await http.get(PATS, headers=bearer(read_only))
    assert listed.json() == []


async def test_an_unknown_scope_is_refused(http: Http, ada_token: str) -> None:
    assert_oauth_error(
        await create_pat(http, ada_token, scopes=["everything"]), 400, "invalid_scope"
    )


async def test_a_refused_scope_is_not_echoed(http: Http, ada_token: str) -> None:
    """A secret pasted into `scopes` must not come back in the error body."""
    secret = "hunter2-" + "s3cr3t" * 4
    refused = await create_pat(http, ada_token, scopes=[READ, secret])
    assert_oauth_error(refused, 400, "invalid_scope")
    assert secret not in refused.text


async def test_a_lifetime_over_the_maximum_is_refused(
    http: Http, ada_token: str, settings: AuthSettings
) -> None:
    assert settings.tokens.pat_max_ttl == 365 * DAY
    too_long = await create_pat(http, ada_token, expires_in=settings.tokens.pat_max_ttl + 1)
    assert_oauth_error(too_long, 400, "invalid_request")
    longest = await create_pat(http, ada_token, expires_in=settings.tokens.pat_max_ttl)
    assert longest.status_code == 201, longest.text


@pytest.mark.parametrize(
    "settings_overrides", [{"pat_max_ttl": "3600", "pat_ttl": "3600"}], ids=["max-1h"]
)
async def test_the_maximum_lifetime_is_the_configured_one(http: Http, ada_token: str) -> None:
    assert_oauth_error(await create_pat(http, ada_token, expires_in=3601), 400, "invalid_request")
    response = await create_pat(http, ada_token)
    assert response.status_code == 201, response.text
    claims = claims_of(response.json()["access_token"])
    assert claims["exp"] - claims["iat"] == 3600


async def test_a_malformed_body_is_refused(http: Http, ada_token: str) -> None:
    for body in (
        {"scopes": [READ]},
        {"name": "", "scopes": [READ]},
        {"name": "x", "scopes": "read-posts"},
    ):
        response = await http.post(PATS, json=body, headers=bearer(ada_token))
        assert response.status_code == 400, (body, response.text)
        assert "access_token" not in response.text


@pytest.mark.parametrize(
    "body",
    [b'{"name": "\xff", "scopes": ["read-posts"]}', b"[" * 5000 + b"]" * 5000],
    ids=["invalid-utf8", "nested-too-deep"],
)
async def test_a_malformed_json_body_is_400_and_read_only_after_the_bearer_check(
    http: Http, ada_token: str, body: bytes
) -> None:
    json_body = {"Content-Type": "application/json"}
    unauthenticated = await http.post(PATS, content=body, headers=json_body)
    assert_bearer_error(unauthenticated, 401, None)
    response = await http.post(PATS, content=body, headers={**bearer(ada_token), **json_body})
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_request"
    assert (await http.get(PATS, headers=bearer(ada_token))).json() == []


async def test_a_nul_character_in_the_name_is_400(http: Http, ada_token: str) -> None:
    response = await create_pat(http, ada_token, name="ci\x00runner")
    assert_oauth_error(response, 400, "invalid_request")
    assert (await http.get(PATS, headers=bearer(ada_token))).json() == []


async def test_a_personal_access_token_cannot_mint_another(http: Http, ada_token: str) -> None:
    pat = (await create_pat(http, ada_token, scopes=[READ, WRITE])).json()["access_token"]
    assert_bearer_error(await create_pat(http, pat), 403, "insufficient_scope")
    assert_bearer_error(await http.get(PATS, headers=bearer(pat)), 403, "insufficient_scope")


async def test_a_client_credentials_token_cannot_mint_one(
    http: Http, seed: Seed, pat_client: str
) -> None:
    machine = await seed.client(
        name="machine", grant_types=("client_credentials",), first_party=True
    )
    token = (await token_request(http, machine, grant_type="client_credentials"))["access_token"]
    assert_bearer_error(await create_pat(http, token), 403, "insufficient_scope")
    assert_bearer_error(await http.get(PATS, headers=bearer(token)), 403, "insufficient_scope")


async def test_a_third_party_clients_user_token_cannot_mint_one(
    http: Http, seed: Seed, ada: str, pat_client: str
) -> None:
    third_party = await seed.client(name="third party", grant_types=("password", "refresh_token"))
    token = (await login(http, third_party))["access_token"]
    assert_bearer_error(await create_pat(http, token), 403, "insufficient_scope")


async def test_a_refreshed_first_party_token_can_mint_one(
    http: Http, ada: str, first_party: Client, pat_client: str
) -> None:
    issued = await login(http, first_party)
    refreshed = await token_request(
        http, first_party, grant_type="refresh_token", refresh_token=issued["refresh_token"]
    )
    response = await create_pat(http, refreshed["access_token"])
    assert response.status_code == 201, response.text


async def test_a_revoked_or_foreign_bearer_token_cannot_mint_one(
    http: Http, ada: str, first_party: Client, pat_client: str
) -> None:
    issued = await login(http, first_party)
    client_id, secret = first_party
    assert secret is not None
    revoked = await http.post(
        "/oauth/revoke",
        data={"token": issued["access_token"]},
        headers=basic_auth(client_id, secret),
    )
    assert revoked.status_code == 200
    assert_bearer_error(await create_pat(http, issued["access_token"]), 401, "invalid_token")
    assert_bearer_error(await create_pat(http, "not.a.token"), 401, "invalid_token")


async def test_a_token_for_another_audience_cannot_mint_one(
    http: Http, ada: str, first_party: Client, pat_client: str
) -> None:
    """A first-party login for another service (`aud: billing`) opens none of the auth
    service's own routes: it would mint a long-lived `posts` token it was never meant for."""
    billing = (await login(http, first_party, resource="billing"))["access_token"]
    assert claims_of(billing)["aud"] == "billing"

    assert_bearer_error(await create_pat(http, billing, scopes=[READ, WRITE]), 401, "invalid_token")
    assert_bearer_error(await http.get(PATS, headers=bearer(billing)), 401, "invalid_token")
    assert_bearer_error(
        await http.post("/oauth/logout", headers=bearer(billing)), 401, "invalid_token"
    )
    posts = (await login(http, first_party))["access_token"]
    assert (await http.get(PATS, headers=bearer(posts))).json() == []


@pytest.mark.parametrize(
    "settings_overrides", [{"account_audiences": "posts billing"}], ids=["posts-and-billing"]
)
async def test_a_personal_access_token_is_for_the_callers_own_audience(
    http: Http, seed: Seed, ada: str, first_party: Client
) -> None:
    """Even where billing tokens may use the account routes, a billing token mints a
    billing token, never a posts one; an audience personal access tokens are not
    issued for is refused."""
    await seed.client(
        name="personal access",
        grant_types=(),
        personal_access=True,
        first_party=True,
        audiences=("billing",),
    )
    billing = (await login(http, first_party, resource="billing"))["access_token"]
    created = await create_pat(http, billing)
    assert created.status_code == 201, created.text
    assert claims_of(created.json()["access_token"])["aud"] == "billing"

    posts = (await login(http, first_party))["access_token"]
    assert_oauth_error(await create_pat(http, posts), 400, "invalid_target")


async def test_without_a_personal_access_client_it_is_503_with_retry_after(
    http: Http, ada: str, first_party: Client
) -> None:
    """Before `portcullis install` made the client: unavailable, and when to ask again, as
    every 503 of ours says."""
    token = (await login(http, first_party))["access_token"]
    refused = await create_pat(http, token)
    assert_oauth_error(refused, 503, "temporarily_unavailable")
    assert int(refused.headers["Retry-After"]) > 0


async def test_no_token_is_401_with_a_bearer_challenge(http: Http, pat_client: str) -> None:
    assert_bearer_error(await http.post(PATS, json={"name": "x", "scopes": [READ]}), 401, None)
    assert_bearer_error(await http.get(PATS), 401, None)
    assert_bearer_error(await http.delete(f"{PATS}/{uuid.uuid4()}"), 401, None)


# --- listing and revoking ---------------------------------------------------------


async def test_each_user_lists_only_their_own(
    http: Http, ada: str, bob: str, first_party: Client, pat_client: str
) -> None:
    ada_token = (await login(http, first_party))["access_token"]
    bob_token = (await login(http, first_party, email="bob@example.com"))["access_token"]
    ada_pats = [(await create_pat(http, ada_token, name=f"ada {n}")).json()["id"] for n in range(2)]
    bob_pat = (await create_pat(http, bob_token, name="bob")).json()["id"]

    ada_listed = (await http.get(PATS, headers=bearer(ada_token))).json()
    bob_listed = (await http.get(PATS, headers=bearer(bob_token))).json()

    assert sorted(item["id"] for item in ada_listed) == sorted(ada_pats)
    assert [item["id"] for item in bob_listed] == [bob_pat]


async def test_deleting_revokes_the_personal_access_token(
    http: Http,
    ada_token: str,
    settings: AuthSettings,
    redis_client: aioredis.Redis,
    redis_prefix: str,
) -> None:
    created = (await create_pat(http, ada_token)).json()
    kept = (await create_pat(http, ada_token, name="kept")).json()
    pat = created["access_token"]
    # Before: the token is live, just not allowed here (a PAT cannot manage PATs).
    assert_bearer_error(await http.get(PATS, headers=bearer(pat)), 403, "insufficient_scope")

    deleted = await http.delete(f"{PATS}/{created['id']}", headers=bearer(ada_token))

    assert deleted.status_code == 204, deleted.text
    assert deleted.content == b""
    # After: refused as a revoked token.
    assert_bearer_error(await http.get(PATS, headers=bearer(pat)), 401, "invalid_token")
    assert await redis_client.exists(f"{redis_prefix}revoked:sid:{created['id']}")
    listed = (await http.get(PATS, headers=bearer(ada_token))).json()
    assert [item["id"] for item in listed] == [kept["id"]]
    # The other one is untouched, and a second delete finds nothing.
    assert_bearer_error(
        await http.get(PATS, headers=bearer(kept["access_token"])), 403, "insufficient_scope"
    )
    again = await http.delete(f"{PATS}/{created['id']}", headers=bearer(ada_token))
    assert again.status_code == 404


async def test_deleting_another_users_token_is_404_and_leaves_it(
    http: Http, ada: str, bob: str, first_party: Client, pat_client: str
) -> None:
    ada_token = (await login(http, first_party))["access_token"]
    bob_token = (await login(http, first_party, email="bob@example.com"))["access_token"]
    bobs = (await create_pat(http, bob_token, name="bob's")).json()

    response = await http.delete(f"{PATS}/{bobs['id']}", headers=bearer(ada_token))

    assert response.status_code == 404, response.text
    assert [item["id"] for item in (await http.get(PATS, headers=bearer(bob_token))).json()] == [
        bobs["id"]
    ]
    # Still live: refused here only for being a PAT, not for being revoked.
    assert_bearer_error(
        await http.get(PATS, headers=bearer(bobs["access_token"])), 403, "insufficient_scope"
    )
    unknown = await http.delete(f"{PATS}/{uuid.uuid4()}", headers=bearer(ada_token))
    assert unknown.status_code == 404


async def test_a_refresh_family_id_is_not_a_personal_access_token(
    http: Http, ada: str, first_party: Client, pat_client: str
) -> None:
    """DELETE takes only personal access tokens: a login's own grant id is not one."""
    issued = await login(http, first_party)
    sid = claims_of(issued["access_token"])["sid"]
    response = await http.delete(f"{PATS}/{sid}", headers=bearer(issued["access_token"]))
    assert response.status_code == 404
    refreshed = await token_request(
        http, first_party, grant_type="refresh_token", refresh_token=issued["refresh_token"]
    )
    assert refreshed["access_token"]


# --- CORS ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "settings_overrides", [{"cors_origins": "https://app.example"}], ids=["cors"]
)
async def test_cors_answers_only_the_configured_origin(http: Http, ada_token: str) -> None:
    preflight_headers = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type",
    }
    allowed = await http.options(
        PATS, headers={"Origin": "https://app.example", **preflight_headers}
    )
    assert allowed.status_code in (200, 204), allowed.text
    assert allowed.headers["access-control-allow-origin"] == "https://app.example"
    assert "POST" in allowed.headers["access-control-allow-methods"]
    assert "authorization" in allowed.headers["access-control-allow-headers"].lower()

    other = await http.options(
        PATS, headers={"Origin": "https://evil.example", **preflight_headers}
    )
    assert "access-control-allow-origin" not in other.headers

    listed = await http.get(PATS, headers={"Origin": "https://app.example", **bearer(ada_token)})
    assert listed.status_code == 200
    assert listed.headers["access-control-allow-origin"] == "https://app.example"
    foreign = await http.get(PATS, headers={"Origin": "https://evil.example", **bearer(ada_token)})
    assert "access-control-allow-origin" not in foreign.headers


async def test_without_configured_origins_there_is_no_cors(http: Http, ada_token: str) -> None:
    response = await http.get(PATS, headers={"Origin": "https://app.example", **bearer(ada_token)})
    assert response.status_code == 200
    assert "access-control-allow-origin" not in response.headers


# --- logout -------------------------------------------------------------------------


async def test_logout_revokes_the_token_and_its_family(
    http: Http,
    ada: str,
    first_party: Client,
    pat_client: str,
    redis_client: aioredis.Redis,
    redis_prefix: str,
) -> None:
    first = await login(http, first_party)
    second = await token_request(
        http, first_party, grant_type="refresh_token", refresh_token=first["refresh_token"]
    )
    other_session = await login(http, first_party)
    claims = claims_of(second["access_token"])

    response = await http.post("/oauth/logout", headers=bearer(second["access_token"]))

    assert response.status_code == 204, response.text
    assert await redis_client.exists(f"{redis_prefix}revoked:jti:{claims['jti']}")
    assert await redis_client.exists(f"{redis_prefix}revoked:sid:{claims['sid']}")
    for token in (first["access_token"], second["access_token"]):
        assert_bearer_error(await http.get(PATS, headers=bearer(token)), 401, "invalid_token")
    client_id, secret = first_party
    assert secret is not None
    refreshed = await http.post(
        "/oauth/token",
        data={"grant_type": "refresh_token", "refresh_token": second["refresh_token"]},
        headers=basic_auth(client_id, secret),
    )
    assert_oauth_error(refreshed, 400, "invalid_grant")
    # Another login of the same user is not logged out.
    assert (await http.get(PATS, headers=bearer(other_session["access_token"]))).status_code == 200
    # Logging out twice: the token is already revoked.
    assert_bearer_error(
        await http.post("/oauth/logout", headers=bearer(second["access_token"])),
        401,
        "invalid_token",
    )


async def test_logout_with_a_personal_access_token_revokes_it(
    http: Http, ada_token: str, redis_client: aioredis.Redis, redis_prefix: str
) -> None:
    created = (await create_pat(http, ada_token)).json()
    response = await http.post("/oauth/logout", headers=bearer(created["access_token"]))
    assert response.status_code == 204, response.text
    assert await redis_client.exists(f"{redis_prefix}revoked:sid:{created['id']}")
    assert (await http.get(PATS, headers=bearer(ada_token))).json() == []


async def test_logout_with_a_client_credentials_token(
    http: Http, seed: Seed, redis_client: aioredis.Redis, redis_prefix: str
) -> None:
    machine = await seed.client(name="machine", grant_types=("client_credentials",))
    token = (await token_request(http, machine, grant_type="client_credentials"))["access_token"]
    claims = claims_of(token)
    response = await http.post("/oauth/logout", headers=bearer(token))
    assert response.status_code == 204, response.text
    assert await redis_client.exists(f"{redis_prefix}revoked:jti:{claims['jti']}")
    assert await redis_client.exists(f"{redis_prefix}revoked:sid:{claims['sid']}")
    assert_bearer_error(
        await http.post("/oauth/logout", headers=bearer(token)), 401, "invalid_token"
    )


async def test_logout_needs_a_token(http: Http) -> None:
    assert_bearer_error(await http.post("/oauth/logout"), 401, None)
    assert_bearer_error(
        await http.post("/oauth/logout", headers=bearer("garbage")), 401, "invalid_token"
    )


async def test_a_client_row_changing_mid_request_is_503_and_nothing_is_kept(
    http: Http, ada_token: str, settings: AuthSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stands in for the personal access client edited between its read and the token's
    record: the request is rolled back and answered 503, never 500."""

    async def client_changed(*_: object) -> bool:
        return False

    monkeypatch.setattr(TokenRepository, "add_access_token", client_changed)

    response = await create_pat(http, ada_token, name="never kept")

    assert_oauth_error(response, 503, "temporarily_unavailable")
    kept = await query(settings, "SELECT id FROM grants WHERE name = 'never kept'")
    assert kept == []
