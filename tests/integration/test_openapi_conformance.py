"""Both services answer as their OpenAPI documents say, checked with Schemathesis.

Schemathesis reads each document from the running service (real processes,
the module's `stack`), generates requests from it, valid and invalid, and
checks every answer: never a 5xx, only statuses the route declares, the
declared content type, body schema and required headers. It authenticates
as the document tells a client to: a bearer token where a route declares
the bearer scheme (a user's token holding every scope), the password
client's Basic credentials where it declares client authentication.

Bounded for a slow machine: a few examples per route, a fixed seed and no
example database, so that a run repeats the last one.
"""

from __future__ import annotations

import base64
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote_plus

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.core.result import Ok
from schemathesis.schemas import APIOperation
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.integration.stack import ADMIN, READ, WRITE, Stack

PLAYGROUND_CLIENT_ID = f"client_{secrets.token_hex(10)}"
"""So that the posts service's playground routes forward to a real public client."""
ADMIN_EMAIL = "admin@example.com"
MAX_EXAMPLES = int(os.environ.get("PORTCULLIS_TEST_OPENAPI_EXAMPLES", "12"))
"""Per route and mode: the module runs in about a minute; raise it for a deeper look."""

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]

SETTINGS = settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)
"""The same examples every run, none kept between runs, and no shrinking: a failure is
reported as found, which keeps a failing run as short as a passing one."""
CONFIG = SchemathesisConfig.from_dict({"generation": {"with-security-parameters": False}})
"""The credentials are the client's (`Credentials`), never generated."""
MODES = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
"""Requests the document allows, and requests it forbids (which must be refused with a
declared 4xx, never a 5xx)."""

Operation = APIOperation[Any, Any, Any, Any]

OAUTH2, BEARER, CLIENT_BASIC = "OAuth2", "BearerJWT", "ClientSecretBasic"
ENDS_ITS_TOKEN = {"/oauth/logout", "/api/oauth/logout"}
"""Routes that revoke the token they are called with: each call gets a token of its own."""


@pytest.fixture(scope="module")
def auth_settings() -> dict[str, str]:
    # Budgets off: once one was spent, every later request would conform as a 429.
    return {
        "PORTCULLIS_PLAYGROUND_CLIENT_ID": PLAYGROUND_CLIENT_ID,
        "PORTCULLIS_RATE_LIMITS": "off",
    }


@pytest.fixture(scope="module")
def posts_settings() -> dict[str, str]:
    return {"PORTCULLIS_PLAYGROUND_CLIENT_ID": PLAYGROUND_CLIENT_ID}


@dataclass(frozen=True)
class Credentials:
    """What a client holds: a user's access token with every scope, and the password
    client's id and secret; and a way to mint a token to throw away."""

    access_token: str
    basic: tuple[str, str]
    disposable_token: Callable[[], str]

    def headers_for(self, case: Case[Operation]) -> dict[str, str]:
        """The credentials the operation's `security` asks for, as a client reads them."""
        requirements = case.operation.definition.raw.get("security") or []
        schemes = {name for requirement in requirements for name in requirement}
        if schemes & {OAUTH2, BEARER}:
            token = (
                self.disposable_token()
                if case.operation.path in ENDS_ITS_TOKEN
                else self.access_token
            )
            return {"Authorization": f"Bearer {token}"}
        if CLIENT_BASIC in schemes:
            return {"Authorization": basic_authorization(*self.basic)}
        return {}


def basic_authorization(client_id: str, client_secret: str) -> str:
    """client_secret_basic: each part form-urlencoded, then base64 (RFC 6749 §2.3.1)."""
    pair = f"{quote_plus(client_id)}:{quote_plus(client_secret)}"
    return "Basic " + base64.b64encode(pair.encode()).decode()


@pytest.fixture(scope="module")
def credentials(stack: Stack) -> Credentials:
    token = stack.token(ADMIN_EMAIL, f"{READ} {WRITE} {ADMIN}")["access_token"]

    def personal_access_token() -> str:
        answer = requests.post(
            f"{stack.auth_url}/oauth/personal-access-tokens",
            json={"name": "logout", "scopes": [READ]},
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )
        assert answer.status_code == 201, answer.text
        return str(answer.json()["access_token"])

    client = stack.password_client
    return Credentials(token, (client.client_id, client.client_secret), personal_access_token)


def answers_as_documented(
    base_url: str, credentials: Credentials, subtests: pytest.Subtests
) -> None:
    """Every operation of the service's document, one subtest per operation and mode."""
    described = schemathesis.openapi.from_url(f"{base_url}/schema/openapi.json", config=CONFIG)
    results = list(described.get_all_operations())
    broken = [result.err() for result in results if not isinstance(result, Ok)]
    assert not broken, f"operations Schemathesis cannot read: {broken}"
    operations = [result.ok() for result in results if isinstance(result, Ok)]
    assert operations, "the document describes no operation"
    for operation in operations:
        for mode in MODES:
            with subtests.test(msg=f"{operation.label} ({mode.value})"):
                check_operation(operation, mode, credentials)


def check_operation(operation: Operation, mode: GenerationMode, credentials: Credentials) -> None:
    @SETTINGS
    @given(case=operation.as_strategy(generation_mode=mode))
    def call(case: Case[Operation]) -> None:
        case.call_and_validate(headers=credentials.headers_for(case), checks=CHECKS)

    try:
        call()
    except Unsatisfiable:
        if mode.is_positive:
            raise
        # The document forbids nothing a request to this operation could get wrong.


def assert_still_live(stack: Stack, credentials: Credentials) -> None:
    """The run spoke with live credentials throughout: no generated request revoked
    them, so the protected routes were exercised past their guards."""
    bearer = {"Authorization": f"Bearer {credentials.access_token}"}
    for url in (f"{stack.auth_url}/oauth/personal-access-tokens", f"{stack.posts_url}/api/me"):
        assert requests.get(url, headers=bearer, timeout=10).status_code == 200, url


def test_auth_service_answers_as_documented(
    stack: Stack, credentials: Credentials, subtests: pytest.Subtests
) -> None:
    answers_as_documented(stack.auth_url, credentials, subtests)
    assert_still_live(stack, credentials)


def test_posts_service_answers_as_documented(
    stack: Stack, credentials: Credentials, subtests: pytest.Subtests
) -> None:
    answers_as_documented(stack.posts_url, credentials, subtests)
    assert_still_live(stack, credentials)


def document(base_url: str) -> dict[str, Any]:
    answer = requests.get(f"{base_url}/schema/openapi.json", timeout=10)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


@pytest.mark.parametrize("service", ["auth", "posts"])
def test_document_says_how_to_get_and_send_a_token(stack: Stack, service: str) -> None:
    described = document(stack.auth_url if service == "auth" else stack.posts_url)
    schemes = described["components"]["securitySchemes"]
    flows = schemes[OAUTH2]["flows"]
    token_url = f"{stack.auth_url}/oauth/token"
    assert flows["password"]["tokenUrl"] == token_url
    assert flows["clientCredentials"]["tokenUrl"] == token_url
    assert flows["authorizationCode"] == {
        "authorizationUrl": f"{stack.auth_url}/oauth/authorize",
        "tokenUrl": token_url,
        "refreshUrl": token_url,
        "scopes": flows["password"]["scopes"],
    }
    assert {READ, WRITE, ADMIN} <= set(flows["password"]["scopes"])
    assert "/oauth/device/code" in schemes[OAUTH2]["description"]
    assert schemes[BEARER] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": schemes[BEARER]["description"],
    }


def test_auth_document_describes_the_token_endpoint(stack: Stack) -> None:
    token = document(stack.auth_url)["paths"]["/oauth/token"]["post"]
    form = token["requestBody"]["content"]["application/x-www-form-urlencoded"]["schema"]
    grant_types = {branch["properties"]["grant_type"]["enum"][0] for branch in form["oneOf"]}
    assert grant_types == {
        "password",
        "client_credentials",
        "refresh_token",
        "authorization_code",
        "urn:ietf:params:oauth:grant-type:device_code",
    }
    assert set(token["responses"]) == {"200", "400", "401", "413", "429", "503"}
    assert set(token["responses"]["429"]["headers"]) == {
        "Retry-After",
        "RateLimit-Limit",
        "RateLimit-Remaining",
        "RateLimit-Reset",
        "RateLimit-Policy",
    }
    assert {CLIENT_BASIC: []} in token["security"]


def test_posts_routes_name_the_scope_they_need(stack: Stack) -> None:
    paths = document(stack.posts_url)["paths"]
    assert {OAUTH2: [READ]} in paths["/api/posts"]["get"]["security"]
    assert {OAUTH2: [WRITE]} in paths["/api/posts"]["post"]["security"]
    assert {OAUTH2: [ADMIN]} in paths["/api/posts/{post_id}"]["delete"]["security"]
    assert "security" not in paths["/api/oauth/password/token"]["post"]
    assert paths["/api/oauth/password/token"]["post"]["responses"]["200"]
    assert "201" not in paths["/api/oauth/password/token"]["post"]["responses"]
