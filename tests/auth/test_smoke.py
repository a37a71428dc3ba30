from __future__ import annotations

from litestar import Litestar
from litestar.testing import AsyncTestClient

from tests.auth.conftest import USER_PASSWORD, Seed, basic_auth


async def test_password_grant_issues_tokens(http: AsyncTestClient[Litestar], seed: Seed) -> None:
    await seed.user()
    client_id, secret = await seed.client()
    assert secret is not None
    response = await http.post(
        "/oauth/token",
        data={"grant_type": "password", "username": "ada@example.com", "password": USER_PASSWORD},
        headers=basic_auth(client_id, secret),
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["refresh_token"]
    refreshed = await http.post(
        "/oauth/token",
        data={"grant_type": "refresh_token", "refresh_token": body["refresh_token"]},
        headers=basic_auth(client_id, secret),
    )
    assert refreshed.status_code == 200, refreshed.text
