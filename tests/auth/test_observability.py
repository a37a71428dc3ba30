"""The auth service's request ids and JSON log lines (PORTCULLIS_LOG_FORMAT=json)."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from portcullis_shared.logs import BatchingHandler
from tests.auth.conftest import USER_PASSWORD, Seed, basic_auth
from tests.auth.helpers import TOKEN_URL, USER_EMAIL, unverified_claims


@pytest.fixture
def settings_overrides() -> dict[str, str]:
    return {"log_format": "json"}


def written_lines(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    """What the service has logged so far: each line must be one JSON object."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, BatchingHandler):
            handler.flush()
    return [json.loads(line) for line in capsys.readouterr().err.splitlines()]


async def test_the_token_endpoint_echoes_the_callers_request_id(
    http: AsyncTestClient[Litestar], seed: Seed
) -> None:
    await seed.user()
    client_id, secret = await seed.client()
    assert secret is not None
    answer = await http.post(
        TOKEN_URL,
        data={"grant_type": "client_credentials"},
        headers={**basic_auth(client_id, secret), "X-Request-ID": "token-call-1"},
    )
    assert answer.status_code == 200, answer.text
    assert answer.headers["X-Request-ID"] == "token-call-1"

    refused = await http.post(
        TOKEN_URL,
        data={"grant_type": "client_credentials"},
        headers={**basic_auth(client_id, secret[::-1]), "X-Request-ID": "token-call-2"},
    )
    assert refused.status_code == 401
    assert refused.json()["error"] == "invalid_client"
    assert refused.headers["X-Request-ID"] == "token-call-2"


async def test_a_token_issued_is_a_json_line_with_its_fields_and_request_id(
    http: AsyncTestClient[Litestar], seed: Seed, capsys: pytest.CaptureFixture[str]
) -> None:
    user_id = await seed.user()
    client_id, secret = await seed.client()
    assert secret is not None
    capsys.readouterr()
    answer = await http.post(
        TOKEN_URL,
        data={"grant_type": "password", "username": USER_EMAIL, "password": USER_PASSWORD},
        headers={**basic_auth(client_id, secret), "X-Request-ID": "login-42"},
    )
    assert answer.status_code == 200, answer.text
    claims = unverified_claims(answer.json()["access_token"])

    lines = written_lines(capsys)
    issued = [line for line in lines if line.get("event") == "token_issued"]
    assert len(issued) == 1, lines
    (line,) = issued
    assert line["request_id"] == "login-42"
    assert line["logger"] == "portcullis.events"
    assert line["level"] == "INFO"
    assert line["grant_type"] == "password"
    assert line["client"] == client_id
    assert line["user"] == user_id
    assert line["jti"] == claims["jti"]
    assert line["sid"] == claims["sid"]
    assert line["message"].startswith("event=token_issued ")
    assert USER_PASSWORD not in json.dumps(lines)
    assert secret not in json.dumps(lines)
