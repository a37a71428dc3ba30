"""The posts service names every answer with its request id, the guard's refusals included."""

from __future__ import annotations

import re
import uuid

from litestar import Litestar
from litestar.testing import AsyncTestClient

from portcullis_shared.testing import TestTokens


async def test_a_guarded_route_echoes_the_callers_request_id(
    posts_http: AsyncTestClient[Litestar], tokens: TestTokens, author_id: uuid.UUID
) -> None:
    headers = tokens.acting_as(str(author_id), scopes=["read-posts"])
    answer = await posts_http.get("/api/posts", headers={**headers, "X-Request-ID": "list-1"})
    assert answer.status_code == 200
    assert answer.headers["X-Request-ID"] == "list-1"


async def test_the_guards_401_carries_the_request_id(
    posts_http: AsyncTestClient[Litestar],
) -> None:
    missing = await posts_http.get("/api/posts", headers={"X-Request-ID": "no-token"})
    assert missing.status_code == 401
    assert missing.headers["X-Request-ID"] == "no-token"
    garbage = await posts_http.get(
        "/api/posts", headers={"Authorization": "Bearer not-a-token", "X-Request-ID": "bad-token"}
    )
    assert garbage.status_code == 401
    assert "invalid_token" in garbage.headers["WWW-Authenticate"]
    assert garbage.headers["X-Request-ID"] == "bad-token"


async def test_the_login_proxy_names_its_answer_even_when_not_configured(
    posts_http: AsyncTestClient[Litestar],
) -> None:
    answer = await posts_http.post(
        "/api/oauth/password/token", json={"username": "a", "password": "b"}
    )
    assert answer.status_code == 503
    assert re.fullmatch(r"[0-9a-f]{32}", answer.headers["X-Request-ID"])


async def test_the_unconfigured_login_proxy_says_when_to_ask_again(
    posts_http: AsyncTestClient[Litestar],
) -> None:
    """Its 503s carry Retry-After, as the auth service's do, on every proxy route."""
    for path, body in (
        ("/api/oauth/password/token", {"username": "a", "password": "b"}),
        ("/api/oauth/code/token", {"code": "c"}),
        ("/api/oauth/logout", None),
    ):
        answer = await posts_http.post(path, json=body)
        assert answer.status_code == 503, path
        assert answer.json()["error"] == "temporarily_unavailable", path
        assert int(answer.headers["Retry-After"]) > 0, path
