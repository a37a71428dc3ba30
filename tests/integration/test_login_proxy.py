"""The posts service's first-party login proxy, between real processes.

Both services write JSON log lines here (PORTCULLIS_LOG_FORMAT=json), so that a
test can follow a login's request id into the auth service's log.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from collections.abc import Callable
from typing import Any

import pytest
import requests

from tests.integration.processes import ServiceProcess
from tests.integration.stack import READ, WRITE, Stack

JSON_LOGS = {"PORTCULLIS_LOG_FORMAT": "json"}
LOG_WAIT = 5.0


@pytest.fixture(scope="module")
def auth_settings() -> dict[str, str]:
    return dict(JSON_LOGS)


@pytest.fixture(scope="module")
def posts_settings() -> dict[str, str]:
    return dict(JSON_LOGS)


def logged_line(
    service: ServiceProcess, wanted: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    """The first JSON line of `service`'s output that is `wanted`, waiting for its
    log writer (which writes every few hundredths of a second)."""
    deadline = time.monotonic() + LOG_WAIT
    while True:
        for text in service.output().splitlines():
            if text.startswith("{"):
                line = json.loads(text)
                if wanted(line):
                    return dict(line)
        assert time.monotonic() < deadline, f"no such line in:\n{service.output()}"
        time.sleep(0.05)


def proxy(stack: Stack, path: str, **kwargs: object) -> requests.Response:
    return requests.post(f"{stack.posts_url}/api/oauth{path}", timeout=10, **kwargs)  # type: ignore[arg-type]


def test_password_login_by_json_and_by_form(stack: Stack) -> None:
    password = stack.passwords["ada@example.com"]
    by_json = proxy(
        stack,
        "/password/token",
        json={"username": "ada@example.com", "password": password, "scope": READ},
    )
    assert by_json.status_code == 200, by_json.text
    assert by_json.headers["Cache-Control"] == "no-store"
    body = by_json.json()
    assert set(body) == {"access_token", "token_type", "expires_in", "scope", "refresh_token"}
    assert stack.posts_call("GET", "/api/posts", body["access_token"]).status_code == 200

    by_form = proxy(
        stack, "/password/token", data={"username": "ada@example.com", "password": password}
    )
    assert by_form.status_code == 200
    me = stack.posts_call("GET", "/api/me", by_form.json()["access_token"]).json()
    assert me["client_id"] == stack.password_client.client_id


def test_the_client_secret_never_reaches_the_caller(stack: Stack) -> None:
    answer = proxy(
        stack,
        "/password/token",
        json={"username": "ada@example.com", "password": stack.passwords["ada@example.com"]},
    )
    assert stack.password_client.client_secret not in answer.text
    assert all(
        stack.password_client.client_secret not in value for value in answer.headers.values()
    )


def test_the_auth_services_errors_come_back_unchanged(stack: Stack) -> None:
    wrong = proxy(
        stack,
        "/password/token",
        json={"username": "ada@example.com", "password": "not the password"},
    )
    assert wrong.status_code == 400
    assert wrong.json()["error"] == "invalid_grant"
    widened = proxy(
        stack,
        "/password/token",
        json={
            "username": "ada@example.com",
            "password": stack.passwords["ada@example.com"],
            "scope": "admin",
        },
    )
    assert widened.status_code == 400
    assert widened.json()["error"] == "invalid_scope"


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"json": {"password": "x"}}, "missing field: username"),
        ({"json": {"username": "ada@example.com"}}, "missing field: password"),
        ({"json": ["not", "an", "object"]}, "the body must be an object"),
        ({"json": {"username": 5, "password": "x"}}, "username must be a string"),
        ({"data": b"{broken", "headers": {"Content-Type": "application/json"}}, "not valid JSON"),
        ({"data": b"hello", "headers": {"Content-Type": "text/plain"}}, "send JSON or a form"),
    ],
)
def test_missing_or_malformed_fields_are_400_with_a_clear_message(
    stack: Stack, kwargs: dict[str, object], expected: str
) -> None:
    answer = proxy(stack, "/password/token", **kwargs)
    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_request"
    assert expected in answer.json()["error_description"]


def test_refresh_and_revoke_through_the_proxy(stack: Stack) -> None:
    first = proxy(
        stack,
        "/password/token",
        json={
            "username": "ada@example.com",
            "password": stack.passwords["ada@example.com"],
            "scope": f"{READ} {WRITE}",
        },
    ).json()
    refreshed = proxy(stack, "/refresh", json={"refresh_token": first["refresh_token"]})
    assert refreshed.status_code == 200
    second = refreshed.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert proxy(stack, "/refresh", json={}).status_code == 400

    revoked = proxy(stack, "/revoke", json={"token": second["access_token"]})
    assert revoked.status_code == 200
    assert revoked.content == b""
    refused = stack.posts_call("GET", "/api/posts", second["access_token"])
    assert refused.status_code == 401


def test_personal_access_tokens_through_the_proxy(stack: Stack) -> None:
    login = proxy(
        stack,
        "/password/token",
        json={
            "username": "bob@example.com",
            "password": stack.passwords["bob@example.com"],
            "scope": READ,
        },
    ).json()
    bearer = {"Authorization": f"Bearer {login['access_token']}"}
    created = requests.post(
        f"{stack.posts_url}/api/oauth/personal-access-tokens",
        json={"name": "script", "scopes": [READ]},
        headers=bearer,
        timeout=10,
    )
    assert created.status_code == 201, created.text
    pat = created.json()
    assert stack.posts_call("GET", "/api/posts", pat["access_token"]).status_code == 200
    listed = requests.get(
        f"{stack.posts_url}/api/oauth/personal-access-tokens", headers=bearer, timeout=10
    )
    assert [item["id"] for item in listed.json()] == [pat["id"]]
    assert "access_token" not in listed.text
    deleted = requests.delete(
        f"{stack.posts_url}/api/oauth/personal-access-tokens/{pat['id']}",
        headers=bearer,
        timeout=10,
    )
    assert deleted.status_code == 204
    assert stack.posts_call("GET", "/api/posts", pat["access_token"]).status_code == 401


def test_revoking_a_personal_access_token_through_the_proxy_says_where_to_go(
    stack: Stack,
) -> None:
    """The proxy speaks as the password client; a personal access token belongs to the
    personal access client. The answer says so instead of a 200 that changed nothing."""
    login = stack.token("ada@example.com", scope=READ)
    created = requests.post(
        f"{stack.auth_url}/oauth/personal-access-tokens",
        json={"name": "script", "scopes": [READ]},
        headers={"Authorization": f"Bearer {login['access_token']}"},
        timeout=10,
    )
    assert created.status_code == 201, created.text
    pat = created.json()

    answer = proxy(stack, "/revoke", json={"token": pat["access_token"]})

    assert answer.status_code == 400, answer.text
    assert answer.json()["error"] == "unauthorized_client"
    assert "personal-access-tokens" in answer.json()["error_description"]
    assert stack.posts_call("GET", "/api/posts", pat["access_token"]).status_code == 200


def login(stack: Stack, headers: dict[str, str] | None = None) -> requests.Response:
    answer = proxy(
        stack,
        "/password/token",
        json={"username": "ada@example.com", "password": stack.passwords["ada@example.com"]},
        headers=headers or {},
    )
    assert answer.status_code == 200, answer.text
    return answer


def issued_with(request_id: str) -> Callable[[dict[str, Any]], bool]:
    return lambda line: line.get("request_id") == request_id and line.get("event") == "token_issued"


def test_the_callers_request_id_follows_a_login_into_the_auth_service(stack: Stack) -> None:
    request_id = f"login-{secrets.token_hex(8)}"
    answer = login(stack, {"X-Request-ID": request_id})
    assert answer.headers["X-Request-ID"] == request_id
    line = logged_line(stack.auth, issued_with(request_id))
    assert line["grant_type"] == "password"
    assert line["client"] == stack.password_client.client_id
    assert line["logger"] == "portcullis.events"
    # The posts service's own line for the call it made, under the same id.
    call = logged_line(
        stack.posts, lambda line: line.get("request_id") == request_id and line["logger"] == "httpx"
    )
    assert "/oauth/token" in call["message"]


def test_a_login_without_a_request_id_gets_one_that_both_services_use(stack: Stack) -> None:
    request_id = login(stack).headers["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", request_id)
    logged_line(stack.auth, issued_with(request_id))


def test_a_malformed_request_id_is_replaced_before_any_service_logs_it(stack: Stack) -> None:
    forged = 'x" level=ERROR message="forged'
    request_id = login(stack, {"X-Request-ID": forged}).headers["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", request_id)
    logged_line(stack.auth, issued_with(request_id))
    assert "forged" not in stack.auth.output() + stack.posts.output()
