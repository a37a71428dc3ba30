"""The embedded default's database: migrations, rotation and token records on SQLite."""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path

from litestar.testing import AsyncTestClient

from portcullis_auth.db.migrate import upgrade_async
from portcullis_auth.http.app import create_app
from portcullis_auth.settings import AuthSettings
from portcullis_resource.db.migrate import upgrade_async as upgrade_posts_async
from tests.auth.conftest import ISSUER, USER_PASSWORD, Seed, basic_auth
from tests.auth.helpers import query


async def test_migrations_run_on_sqlite_and_refresh_rotates(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'auth.db'}"
    await upgrade_async(url)
    await upgrade_posts_async(f"sqlite+aiosqlite:///{tmp_path / 'posts.db'}")
    settings = AuthSettings.from_env(
        {
            "PORTCULLIS_ISSUER": ISSUER,
            "PORTCULLIS_DATABASE_URL": url,
            "PORTCULLIS_SECRET_KEY": secrets.token_hex(32),
        },
        require_redis=False,
    )
    seed = Seed(settings)
    await seed.signing_key()
    await seed.user()
    client_id, secret = await seed.client()
    assert secret is not None
    headers = basic_auth(client_id, secret)
    async with AsyncTestClient(app=create_app(settings), base_url=ISSUER) as http:
        login = await http.post(
            "/oauth/token",
            data={
                "grant_type": "password",
                "username": "ada@example.com",
                "password": USER_PASSWORD,
            },
            headers=headers,
        )
        assert login.status_code == 200, login.text
        first = login.json()["refresh_token"]
        rotated = await http.post(
            "/oauth/token",
            data={"grant_type": "refresh_token", "refresh_token": first},
            headers=headers,
        )
        assert rotated.status_code == 200, rotated.text
        again = await http.post(
            "/oauth/token",
            data={"grant_type": "refresh_token", "refresh_token": first},
            headers=headers,
        )
        assert again.status_code == 400
        assert again.json()["error"] == "invalid_grant"
        second = rotated.json()["refresh_token"]
        assert (
            await http.post(
                "/oauth/token",
                data={"grant_type": "refresh_token", "refresh_token": second},
                headers=headers,
            )
        ).status_code == 200
        # Client credentials: records written by the batching recorder, one by one here.
        machine = [
            http.post("/oauth/token", data={"grant_type": "client_credentials"}, headers=headers)
            for _ in range(5)
        ]
        answers = await asyncio.gather(*machine)
        assert [answer.status_code for answer in answers] == [200] * 5
        recorded = await query(settings, "SELECT count(*) AS n FROM access_tokens")
        assert recorded[0]["n"] == 5 + 3  # and the password grant's and two refreshes'
