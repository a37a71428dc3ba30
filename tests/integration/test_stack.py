"""Both services as real processes: tokens from the auth service used at the posts service.

One stack per module (starting processes is the slow part): the auth service
installed through its CLI with an admin, a user and machine clients, and the
posts service knowing nothing of it but its JWKS URL and the shared Redis.
"""

from __future__ import annotations

import time

import pytest
import requests

from tests.integration.stack import ADMIN, READ, WRITE, Stack


def test_a_user_token_works_across_the_posts_api(stack: Stack) -> None:
    token = stack.token("ada@example.com", f"{READ} {WRITE}")["access_token"]
    created = stack.posts_call("POST", "/api/posts", token, {"title": "From Ada", "body": "hello"})
    assert created.status_code == 201, created.text
    post_id = created.json()["id"]
    assert stack.posts_call("GET", "/api/posts", token).status_code == 200
    assert stack.posts_call("GET", f"/api/posts/{post_id}", token).json()["title"] == "From Ada"
    edited = stack.posts_call("PATCH", f"/api/posts/{post_id}", token, {"title": "Edited"})
    assert edited.status_code == 200
    assert stack.posts_call("DELETE", f"/api/posts/{post_id}", token).status_code == 403
    me = stack.posts_call("GET", "/api/me", token).json()
    assert me["is_client"] is False
    assert me["client_id"] == stack.password_client.client_id
    assert me["scopes"] == [READ, WRITE]


# (scope granted, method, needs write body, expected status)
SCOPE_MATRIX = [
    (READ, "GET", "/api/posts", 200),
    (READ, "POST", "/api/posts", 403),
    (READ, "PATCH", "/api/posts/{id}", 403),
    (READ, "DELETE", "/api/posts/{id}", 403),
    (WRITE, "GET", "/api/posts", 403),
    (WRITE, "GET", "/api/posts/{id}", 403),
    (WRITE, "POST", "/api/posts", 201),
    (WRITE, "PATCH", "/api/posts/{id}", 200),
    (f"{READ} {WRITE}", "DELETE", "/api/posts/{id}", 403),
]


@pytest.mark.parametrize(("scope", "method", "path", "expected"), SCOPE_MATRIX)
def test_user_scopes_decide_each_route(
    stack: Stack, scope: str, method: str, path: str, expected: int
) -> None:
    owner = stack.token("ada@example.com", f"{READ} {WRITE}")["access_token"]
    post_id = stack.posts_call("POST", "/api/posts", owner, {"title": "t", "body": "b"}).json()[
        "id"
    ]
    token = stack.token("ada@example.com", scope)["access_token"]
    body = {"title": "x", "body": "y"} if method in {"POST", "PATCH"} else None
    response = stack.posts_call(method, path.replace("{id}", post_id), token, body)
    assert response.status_code == expected, response.text
    if expected == 403:
        assert 'error="insufficient_scope"' in response.headers["WWW-Authenticate"]


def test_only_the_author_or_an_admin_edits_and_only_an_admin_deletes(stack: Stack) -> None:
    ada = stack.token("ada@example.com", f"{READ} {WRITE}")["access_token"]
    bob = stack.token("bob@example.com", f"{READ} {WRITE}")["access_token"]
    admin = stack.token("admin@example.com", f"{READ} {WRITE} {ADMIN}")["access_token"]
    post_id = stack.posts_call("POST", "/api/posts", ada, {"title": "Ada's", "body": "b"}).json()[
        "id"
    ]
    assert (
        stack.posts_call("PATCH", f"/api/posts/{post_id}", bob, {"title": "Bob's"}).status_code
        == 403
    )
    assert (
        stack.posts_call("PATCH", f"/api/posts/{post_id}", admin, {"body": "moderated"}).status_code
        == 200
    )
    assert stack.posts_call("DELETE", f"/api/posts/{post_id}", admin).status_code == 204
    assert stack.posts_call("GET", f"/api/posts/{post_id}", ada).status_code == 404


def test_a_non_admin_cannot_get_the_admin_scope(stack: Stack) -> None:
    response = requests.post(
        f"{stack.auth_url}/oauth/token",
        data={
            "grant_type": "password",
            "username": "ada@example.com",
            "password": stack.passwords["ada@example.com"],
            "scope": ADMIN,
        },
        auth=(stack.password_client.client_id, stack.password_client.client_secret),
        timeout=10,
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_scope"


def test_a_client_token_reads_but_cannot_write(stack: Stack) -> None:
    token = stack.client_token(stack.machine_client, scope=f"{READ} {WRITE}")["access_token"]
    assert stack.posts_call("GET", "/api/posts", token).status_code == 200
    refused = stack.posts_call("POST", "/api/posts", token, {"title": "t", "body": "b"})
    assert refused.status_code == 403
    me = stack.posts_call("GET", "/api/me", token).json()
    assert me["is_client"] is True
    assert me["user_id"] is None
    assert me["subject"] == stack.machine_client.client_id


def test_a_token_for_another_audience_is_refused(stack: Stack) -> None:
    billing = stack.client_token(stack.billing_client, resource="billing")["access_token"]
    refused = stack.posts_call("GET", "/api/posts", billing)
    assert refused.status_code == 401
    assert 'error="invalid_token"' in refused.headers["WWW-Authenticate"]
    posts = stack.client_token(stack.billing_client, resource="posts", scope=READ)["access_token"]
    assert stack.posts_call("GET", "/api/posts", posts).status_code == 200


@pytest.mark.parametrize("token", [None, "garbage", "a.b.c"])
def test_missing_or_garbage_tokens_are_refused(stack: Stack, token: str | None) -> None:
    response = stack.posts_call("GET", "/api/posts", token)
    assert response.status_code == 401
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.startswith('Bearer realm="posts"')
    assert ('error="invalid_token"' in challenge) == (token is not None)


def test_a_tampered_token_and_a_refresh_token_are_refused(stack: Stack) -> None:
    issued = stack.token("ada@example.com", READ)
    header, payload, signature = issued["access_token"].split(".")
    tampered = f"{header}.{payload[:-4]}AAAA.{signature}"
    assert stack.posts_call("GET", "/api/posts", tampered).status_code == 401
    assert stack.posts_call("GET", "/api/posts", issued["refresh_token"]).status_code == 401


def test_refresh_token_reuse_revokes_the_family_at_the_posts_service_within_a_second(
    stack: Stack,
) -> None:
    first = stack.token("ada@example.com", READ)
    auth = (stack.password_client.client_id, stack.password_client.client_secret)
    url = f"{stack.auth_url}/oauth/token"
    second = requests.post(
        url,
        data={"grant_type": "refresh_token", "refresh_token": first["refresh_token"]},
        auth=auth,
        timeout=10,
    ).json()
    third = requests.post(
        url,
        data={"grant_type": "refresh_token", "refresh_token": second["refresh_token"]},
        auth=auth,
        timeout=10,
    ).json()
    assert stack.posts_call("GET", "/api/posts", third["access_token"]).status_code == 200

    # RT1 again, after its successor was used: reuse. The whole family goes.
    reused = requests.post(
        url,
        data={"grant_type": "refresh_token", "refresh_token": first["refresh_token"]},
        auth=auth,
        timeout=10,
    )
    revoked_at = time.monotonic()
    assert reused.status_code == 400
    assert reused.json()["error"] == "invalid_grant"
    delay = None
    while time.monotonic() - revoked_at < 1.0:
        if stack.posts_call("GET", "/api/posts", third["access_token"]).status_code == 401:
            delay = time.monotonic() - revoked_at
            break
        time.sleep(0.02)
    assert delay is not None, "a token of the revoked family still worked 1 s after the reuse"
    print(f"family revocation refused at the posts service after {delay * 1000:.0f} ms")
    for token in (first["access_token"], second["access_token"], third["access_token"]):
        response = stack.posts_call("GET", "/api/posts", token)
        assert response.status_code == 401
        assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]
