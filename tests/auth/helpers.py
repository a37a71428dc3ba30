"""Small helpers the auth-service tests share: token requests, JWT peeking, raw SQL, and
a browser's way through the pages."""

from __future__ import annotations

import base64
import json
import re
from html import unescape
from http.cookies import SimpleCookie
from typing import Any

import httpx
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import RowMapping, text
from sqlalchemy.ext.asyncio import create_async_engine

from portcullis_auth.settings import AuthSettings
from tests.auth.conftest import USER_PASSWORD, basic_auth

TOKEN_URL = "/oauth/token"
USER_EMAIL = "ada@example.com"


async def password_grant(
    http: AsyncTestClient[Litestar],
    client_id: str,
    secret: str,
    *,
    username: str = USER_EMAIL,
    password: str = USER_PASSWORD,
    forwarded_for: str | None = None,
    **params: str,
) -> httpx.Response:
    headers = basic_auth(client_id, secret)
    if forwarded_for is not None:
        headers["X-Forwarded-For"] = forwarded_for
    return await http.post(
        TOKEN_URL,
        data={"grant_type": "password", "username": username, "password": password, **params},
        headers=headers,
    )


async def refresh_grant(
    http: AsyncTestClient[Litestar],
    client_id: str,
    secret: str,
    refresh_token: str,
    **params: str,
) -> httpx.Response:
    return await http.post(
        TOKEN_URL,
        data={"grant_type": "refresh_token", "refresh_token": refresh_token, **params},
        headers=basic_auth(client_id, secret),
    )


async def client_credentials_grant(
    http: AsyncTestClient[Litestar], client_id: str, secret: str, **params: str
) -> httpx.Response:
    return await http.post(
        TOKEN_URL,
        data={"grant_type": "client_credentials", **params},
        headers=basic_auth(client_id, secret),
    )


def _b64url_json(segment: str) -> dict[str, Any]:
    decoded: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    )
    return decoded


def unverified_claims(token: str) -> dict[str, Any]:
    """The JWT payload, read without checking the signature."""
    return _b64url_json(token.split(".")[1])


def unverified_header(token: str) -> dict[str, Any]:
    return _b64url_json(token.split(".", maxsplit=1)[0])


def assert_oauth_error(response: httpx.Response, status: int, error: str) -> None:
    """RFC 6749 §5.2: JSON `{error, error_description}`, never cached."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert set(body) == {"error", "error_description"}, body
    assert body["error"] == error, body
    assert isinstance(body["error_description"], str)
    assert body["error_description"]


async def query(settings: AuthSettings, sql: str, **params: object) -> list[RowMapping]:
    """Rows of one SQL statement, run in its own connection against the test's database."""
    engine = create_async_engine(settings.database.url)
    try:
        async with engine.connect() as connection:
            result = await connection.execute(text(sql), params)
            return list(result.mappings().all())
    finally:
        await engine.dispose()


async def execute(settings: AuthSettings, sql: str, **params: object) -> int:
    """Run one statement and commit it; the number of rows it touched."""
    engine = create_async_engine(settings.database.url)
    try:
        async with engine.begin() as connection:
            result = await connection.execute(text(sql), params)
            return result.rowcount
    finally:
        await engine.dispose()


# --- the pages, as a browser uses them -------------------------------------------------------

_HIDDEN = re.compile(r'<input type="hidden" name="([^"]*)" value="([^"]*)">')


def csrf_of(page: httpx.Response) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert found is not None, page.text
    return found.group(1)


def hidden_fields(page: httpx.Response) -> dict[str, str]:
    """The hidden fields of the page's last form, as a browser would post them."""
    return {unescape(name): unescape(value) for name, value in _HIDDEN.findall(page.text)}


def set_cookie(response: httpx.Response, name: str) -> SimpleCookie:
    for header in response.headers.get_list("set-cookie"):
        if header.startswith(f"{name}="):
            jar: SimpleCookie = SimpleCookie()
            jar.load(header)
            return jar
    raise AssertionError(f"no {name} cookie set: {response.headers.get_list('set-cookie')}")


async def sign_in(
    http: AsyncTestClient[Litestar],
    password: str = USER_PASSWORD,
    *,
    email: str = USER_EMAIL,
    **extra: str,
) -> httpx.Response:
    """The sign-in page, filled in and sent; the answer is not followed."""
    page = await http.get("/sign-in")
    return await http.post(
        "/sign-in",
        data={"email": email, "password": password, "csrf_token": csrf_of(page), **extra},
        follow_redirects=False,
    )
