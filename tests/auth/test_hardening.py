"""Edges found in review: concurrency, nesting, configuration and grant re-checks."""

from __future__ import annotations

import base64

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy.ext.asyncio import AsyncSession

from portcullis_auth.http.app import create_app
from portcullis_auth.services.clients import ClientService
from portcullis_auth.settings import AuthSettings
from portcullis_shared.environment import SettingsError
from tests.auth.conftest import ISSUER, USER_PASSWORD, Seed, auth_environ, basic_auth
from tests.auth.test_grants import _in_flight_together

TOKEN_URL = "/oauth/token"


async def test_parallel_wrong_passwords_cannot_slip_past_the_throttle(
    http: AsyncTestClient[Litestar], app: Litestar, seed: Seed, settings: AuthSettings
) -> None:
    await seed.user()
    client_id, secret = await seed.client()
    assert secret is not None
    responses = _in_flight_together(
        http,
        app,
        20,
        {"grant_type": "password", "username": "ada@example.com", "password": "a guess"},
        basic_auth(client_id, secret),
    )
    checked = [r for r in responses if r.status_code == 400]
    refused = [r for r in responses if r.status_code == 429]
    assert len(checked) == settings.login.max_failures
    assert len(refused) == 20 - settings.login.max_failures
    assert all(r.headers["retry-after"] for r in refused)


async def test_refresh_stops_once_the_client_loses_the_originating_grant(
    http: AsyncTestClient[Litestar], seed: Seed
) -> None:
    await seed.user()
    client_id, secret = await seed.client()
    assert secret is not None
    headers = basic_auth(client_id, secret)
    login = await http.post(
        TOKEN_URL,
        data={"grant_type": "password", "username": "ada@example.com", "password": USER_PASSWORD},
        headers=headers,
    )
    refresh_token = login.json()["refresh_token"]

    async def drop_password_grant(session: AsyncSession) -> None:
        service = ClientService(session)
        client = await service.get(client_id)
        assert client is not None
        await service.update(
            client, seed.settings.scopes.names, grant_types=["refresh_token", "client_credentials"]
        )

    await seed.run(drop_password_grant)
    refreshed = await http.post(
        TOKEN_URL,
        data={"grant_type": "refresh_token", "refresh_token": refresh_token},
        headers=headers,
    )
    assert refreshed.status_code == 400
    assert refreshed.json()["error"] == "invalid_grant"


@pytest.mark.parametrize("path", ["/oauth/revoke", "/oauth/introspect"])
async def test_a_deeply_nested_token_header_is_not_a_500(
    http: AsyncTestClient[Litestar], seed: Seed, path: str
) -> None:
    client_id, secret = await seed.client()
    assert secret is not None
    nested = ("[" * 5000 + "]" * 5000).encode()
    header = base64.urlsafe_b64encode(nested).rstrip(b"=").decode()
    response = await http.post(
        path, data={"token": f"{header}.e30.sig"}, headers=basic_auth(client_id, secret)
    )
    assert response.status_code == 200
    if path == "/oauth/introspect":
        assert response.json() == {"active": False}


async def test_cors_answers_only_on_personal_access_token_routes(
    database_url: str, redis_url: str, redis_prefix: str, seed: Seed
) -> None:
    settings = AuthSettings.from_env(
        auth_environ(database_url, redis_url, redis_prefix, cors_origins="https://app.example")
    )
    preflight = {
        "Origin": "https://app.example",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization",
    }
    async with AsyncTestClient(app=create_app(settings), base_url=ISSUER) as http:
        allowed = await http.options("/oauth/personal-access-tokens", headers=preflight)
        assert allowed.headers.get("access-control-allow-origin") == "https://app.example"
        for path in ("/oauth/token", "/oauth/revoke", "/oauth/introspect"):
            refused = await http.options(path, headers=preflight)
            assert "access-control-allow-origin" not in refused.headers
        other = await http.options(
            "/oauth/personal-access-tokens", headers={**preflight, "Origin": "https://evil.example"}
        )
        assert "access-control-allow-origin" not in other.headers


@pytest.mark.parametrize("origins", ["*", "https://*.example.com", "app.example"])
def test_wildcard_or_bare_cors_origins_stop_startup(
    database_url: str, redis_url: str, redis_prefix: str, origins: str
) -> None:
    with pytest.raises(SettingsError, match="PORTCULLIS_CORS_ORIGINS"):
        AuthSettings.from_env(
            auth_environ(database_url, redis_url, redis_prefix, cors_origins=origins)
        )


async def test_the_api_description_loads_nothing_from_other_sites(
    http: AsyncTestClient[Litestar],
) -> None:
    for explorer in ("/schema/swagger", "/schema/redoc", "/schema/elements", "/schema/rapidoc"):
        assert (await http.get(explorer)).status_code == 404, explorer
    described = await http.get("/schema/openapi.json")
    assert described.status_code == 200
    csp = described.headers["content-security-policy"]
    assert "default-src 'none'" in csp
    assert "frame-ancestors 'none'" in csp


async def test_token_and_error_answers_load_nothing_and_are_never_cached(
    http: AsyncTestClient[Litestar], seed: Seed
) -> None:
    client_id, secret = await seed.client()
    assert secret is not None
    issued = await http.post(
        TOKEN_URL, data={"grant_type": "client_credentials"}, headers=basic_auth(client_id, secret)
    )
    refused = await http.post(TOKEN_URL, data={"grant_type": "client_credentials"})
    missing = await http.get("/no/such/route")
    for answer in (issued, refused, missing):
        assert answer.headers["content-security-policy"].startswith("default-src 'none'")
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers["cache-control"] == "no-store"
    assert (issued.status_code, refused.status_code, missing.status_code) == (200, 401, 404)
