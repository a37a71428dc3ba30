"""`portcullis_shared.testing.TestTokens`: what other teams use to test their guarded services."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from portcullis_shared.testing import TestTokens
from tests.shared.conftest import (
    assert_invalid_token,
    b64url_decode,
    bearer,
    guarded_app,
)

ISSUER = "https://auth.helper.test"
AUDIENCE = "orders"


def refused(response: Any) -> None:
    """401 invalid_token; the realm defaults to the audience."""
    assert_invalid_token(response, realm=AUDIENCE)


def payload_of(headers: dict[str, str]) -> dict[str, Any]:
    token = headers["Authorization"].removeprefix("Bearer ")
    decoded: dict[str, Any] = json.loads(b64url_decode(token.split(".")[1]))
    return decoded


def header_of(headers: dict[str, str]) -> dict[str, Any]:
    token = headers["Authorization"].removeprefix("Bearer ")
    decoded: dict[str, Any] = json.loads(b64url_decode(token.split(".")[0]))
    return decoded


@pytest.fixture(scope="module")
def tokens() -> TestTokens:
    return TestTokens(issuer=ISSUER, audience=AUDIENCE)


@pytest.fixture
async def http(tokens: TestTokens) -> AsyncIterator[AsyncTestClient[Litestar]]:
    async with AsyncTestClient(app=guarded_app(tokens.guard())) as client:
        yield client


async def test_acting_as_a_user(tokens: TestTokens, http: AsyncTestClient[Litestar]) -> None:
    user_id = uuid.uuid4()
    headers = tokens.acting_as(user_id, scopes=["write-posts", "read-posts"])
    response = await http.get("/api/me", headers=headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["is_client"] is False
    assert body["user_id"] == str(user_id)
    assert body["subject"] == str(user_id)
    assert body["client_id"] == "test-client"
    assert body["scopes"] == ["read-posts", "write-posts"]
    assert (body["can_read"], body["can_write"], body["can_admin"]) == (True, True, False)
    assert (await http.get("/api/user-only", headers=headers)).status_code == 200
    assert (await http.get("/api/client-only", headers=headers)).status_code == 403


async def test_acting_as_a_user_through_a_named_client(
    tokens: TestTokens, http: AsyncTestClient[Litestar]
) -> None:
    headers = tokens.acting_as(str(uuid.uuid4()), client_id="mobile-app")
    body = (await http.get("/api/me", headers=headers)).json()
    assert body["client_id"] == "mobile-app"
    assert body["is_client"] is False
    assert body["scopes"] == []


async def test_acting_as_a_client(tokens: TestTokens, http: AsyncTestClient[Litestar]) -> None:
    headers = tokens.acting_as_client("billing", scopes=["read-posts"])
    response = await http.get("/api/me", headers=headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["is_client"] is True
    assert body["user_id"] is None
    assert body["subject"] == body["client_id"] == "billing"
    assert body["scopes"] == ["read-posts"]
    assert (await http.get("/api/client-only", headers=headers)).status_code == 200
    assert (await http.get("/api/user-only", headers=headers)).status_code == 403


async def test_scope_guards_see_the_helper_scopes(
    tokens: TestTokens, http: AsyncTestClient[Litestar]
) -> None:
    reader = tokens.acting_as(uuid.uuid4(), scopes=["read-posts"])
    assert (await http.get("/api/posts", headers=reader)).status_code == 200
    assert (await http.get("/api/posts/editor", headers=reader)).status_code == 403
    writer = tokens.acting_as(uuid.uuid4(), scopes=["read-posts", "write-posts"])
    assert (await http.get("/api/posts/editor", headers=writer)).status_code == 200


def test_helper_tokens_look_like_the_auth_service_tokens(tokens: TestTokens) -> None:
    headers = tokens.acting_as(uuid.uuid4(), scopes=["read-posts"])
    assert header_of(headers) == {"alg": "RS256", "kid": tokens.kid, "typ": "at+jwt"}
    payload = payload_of(headers)
    assert set(payload) == {
        "iss",
        "sub",
        "aud",
        "exp",
        "iat",
        "jti",
        "client_id",
        "scope",
        "sid",
    }
    assert payload["iss"] == ISSUER
    assert payload["aud"] == AUDIENCE
    assert payload["exp"] - payload["iat"] == 900
    published = tokens.jwks["keys"][0]
    assert not {"d", "p", "q", "dp", "dq", "qi"} & set(published)
    assert published["kid"] == tokens.kid


async def test_helper_tokens_are_refused_by_another_helper(
    tokens: TestTokens, http: AsyncTestClient[Litestar]
) -> None:
    stranger = TestTokens(issuer=ISSUER, audience=AUDIENCE)
    refused(await http.get("/api/me", headers=stranger.acting_as(uuid.uuid4())))


async def test_helper_tokens_for_another_audience_are_refused(
    tokens: TestTokens, http: AsyncTestClient[Litestar]
) -> None:
    token = tokens.token(subject=str(uuid.uuid4()), client_id="web", aud="billing")
    refused(await http.get("/api/me", headers=bearer(token)))


async def test_expired_helper_token_is_refused(
    tokens: TestTokens, http: AsyncTestClient[Litestar]
) -> None:
    token = tokens.token(subject=str(uuid.uuid4()), client_id="web", ttl=-60)
    refused(await http.get("/api/me", headers=bearer(token)))


async def test_revoking_a_token_through_the_helper(
    tokens: TestTokens, http: AsyncTestClient[Litestar]
) -> None:
    headers = tokens.acting_as(uuid.uuid4())
    other = tokens.acting_as(uuid.uuid4())
    assert (await http.get("/api/me", headers=headers)).status_code == 200
    payload = payload_of(headers)
    tokens.revocations.revoke_token(payload["jti"], payload["exp"])
    refused(await http.get("/api/me", headers=headers))
    assert (await http.get("/api/me", headers=other)).status_code == 200


async def test_revoking_a_grant_through_the_helper(
    tokens: TestTokens, http: AsyncTestClient[Litestar]
) -> None:
    headers = tokens.acting_as(uuid.uuid4())
    payload = payload_of(headers)
    tokens.revocations.revoke_grant(payload["sid"], payload["exp"])
    refused(await http.get("/api/me", headers=headers))


async def test_revoking_a_user_through_the_helper(
    tokens: TestTokens, http: AsyncTestClient[Litestar]
) -> None:
    user_id = uuid.uuid4()
    headers = tokens.acting_as(user_id)
    tokens.revocations.revoke_user(str(user_id), int(time.time()))
    refused(await http.get("/api/me", headers=headers))
    # A token issued after the cutoff passes again.
    later = tokens.token(subject=str(user_id), client_id="web", iat=int(time.time()) + 1)
    assert (await http.get("/api/me", headers=bearer(later))).status_code == 200


async def test_revoking_a_client_through_the_helper(
    tokens: TestTokens, http: AsyncTestClient[Litestar]
) -> None:
    client_headers = tokens.acting_as_client("revoked-worker")
    user_headers = tokens.acting_as(uuid.uuid4(), client_id="revoked-worker")
    tokens.revocations.revoke_client("revoked-worker", int(time.time()))
    refused(await http.get("/api/me", headers=client_headers))
    refused(await http.get("/api/me", headers=user_headers))
    assert (
        await http.get("/api/me", headers=tokens.acting_as_client("other-worker"))
    ).status_code == 200
