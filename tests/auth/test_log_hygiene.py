"""docs/security.md, information leaks: no log line or error body holds a password, client
secret, token or `Authorization` header. Runs the flows with every logger at DEBUG
(SQLAlchemy's included) and scans the log records and the process's stderr/stdout.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from portcullis_auth.http.app import create_app
from portcullis_auth.settings import AuthSettings
from portcullis_shared.logs import BatchingHandler
from tests.auth.conftest import ISSUER, USER_PASSWORD, Seed, basic_auth
from tests.auth.helpers import (
    TOKEN_URL,
    USER_EMAIL,
    client_credentials_grant,
    password_grant,
    refresh_grant,
)

WRONG_PASSWORD = "Tr0ub4dor&3-wrong-password"
LAST_EVENT = "event=grant_revoked"


def _record_texts(records: list[logging.LogRecord]) -> list[str]:
    formatter = logging.Formatter()
    texts = []
    for record in records:
        texts.append(record.getMessage())
        texts.append(repr(record.args))
        texts.append(repr(record.__dict__))
        if record.exc_info:
            texts.append(formatter.formatException(record.exc_info))
        if record.exc_text:
            texts.append(record.exc_text)
    return texts


async def _read_output(capfd: pytest.CaptureFixture[str], until: str) -> tuple[str, str]:
    """Everything written to fds 1 and 2, waiting (≤ 5 s) for the log queue to drain."""
    out, err = "", ""
    deadline = time.monotonic() + 5
    while True:
        captured = capfd.readouterr()
        out += captured.out
        err += captured.err
        if until in out + err or time.monotonic() > deadline:
            return out, err
        await asyncio.sleep(0.05)


@asynccontextmanager
async def _app_writing_to_capfd(
    settings: AuthSettings, caplog: pytest.LogCaptureFixture
) -> AsyncIterator[AsyncTestClient[Litestar]]:
    """The app, built inside the test so that `caplog` sees its records too.

    Building the app replaces the root logger's handlers, so `caplog`'s goes back on.
    The app's handler writes to whatever stderr is in place when it writes (`capfd`'s
    here); on leaving, what it holds is written while that stderr is still open.
    """
    app = create_app(settings)
    logging.getLogger().addHandler(caplog.handler)
    try:
        async with AsyncTestClient(app=app, base_url=ISSUER) as client:
            yield client
    finally:
        for handler in logging.getLogger().handlers:
            if isinstance(handler, BatchingHandler):
                handler.flush()


async def test_no_secret_reaches_logs_output_or_error_bodies(
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    settings: AuthSettings,
    seed: Seed,
) -> None:
    async with _app_writing_to_capfd(settings, caplog) as http:
        await _check_no_secret_leaks(capfd, caplog, http, seed)


async def _check_no_secret_leaks(
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    http: AsyncTestClient[Litestar],
    seed: Seed,
) -> None:
    caplog.set_level(logging.DEBUG)
    for name in ("sqlalchemy", "litestar", "httpx", "redis", "asyncio"):
        caplog.set_level(logging.DEBUG, logger=name)
    await seed.user()
    client_id, secret = await seed.client()
    assert secret is not None
    wrong_secret = secret[::-1]
    secrets: set[str] = {USER_PASSWORD, WRONG_PASSWORD, secret, wrong_secret}
    for value in (basic_auth(client_id, secret), basic_auth(client_id, wrong_secret)):
        header = value["Authorization"]
        secrets |= {header, header.removeprefix("Basic ")}
    error_responses: list[httpx.Response] = []

    # Password grant, refresh, client credentials.
    login = await password_grant(http, client_id, secret)
    assert login.status_code == 200, login.text
    refreshed = await refresh_grant(http, client_id, secret, login.json()["refresh_token"])
    assert refreshed.status_code == 200, refreshed.text
    machine = await client_credentials_grant(http, client_id, secret)
    assert machine.status_code == 200, machine.text
    # Failures: wrong password, unknown user, bad client secret (Basic and post),
    # a repeat inside the grace window, and reuse that revokes the family.
    error_responses += [
        await password_grant(http, client_id, secret, password=WRONG_PASSWORD),
        await password_grant(
            http, client_id, secret, username="nobody@example.com", password=WRONG_PASSWORD
        ),
        await client_credentials_grant(http, client_id, wrong_secret),
        await http.post(
            TOKEN_URL,
            data={
                "grant_type": "password",
                "username": USER_EMAIL,
                "password": USER_PASSWORD,
                "client_id": client_id,
                "client_secret": wrong_secret,
            },
        ),
        await refresh_grant(http, client_id, secret, login.json()["refresh_token"]),
    ]
    third = await refresh_grant(http, client_id, secret, refreshed.json()["refresh_token"])
    assert third.status_code == 200, third.text
    error_responses.append(
        await refresh_grant(http, client_id, secret, login.json()["refresh_token"])
    )
    assert [response.status_code for response in error_responses] == [400, 400, 401, 401, 400, 400]

    for body in (login.json(), refreshed.json(), machine.json(), third.json()):
        for name in ("access_token", "refresh_token"):
            if name in body:
                token = body[name]
                secrets.add(token)
                if name == "access_token":
                    secrets.add(token.rsplit(".", 1)[1])  # the signature alone
    out, err = await _read_output(capfd, LAST_EVENT)

    # The scan looks at real output: the audit events were logged and printed.
    messages = [record.getMessage() for record in caplog.records]
    assert any("event=token_issued" in message for message in messages), messages
    assert any(LAST_EVENT in message for message in messages), messages
    assert any(record.name.startswith("sqlalchemy") for record in caplog.records)
    assert LAST_EVENT in err + out
    assert "--- Logging error ---" not in err  # the lines were written, not failed

    haystacks = {
        "log records": "\n".join(_record_texts(caplog.records)),
        "caplog text": caplog.text,
        "stdout": out,
        "stderr": err,
        "error bodies": "\n".join(response.text for response in error_responses),
        "error headers": "\n".join(repr(response.headers) for response in error_responses),
    }
    for where, text in haystacks.items():
        for secret_value in secrets:
            assert secret_value not in text, f"a secret appears in {where}"
            encoded = base64.b64encode(secret_value.encode()).decode()
            assert encoded not in text, f"a base64-encoded secret appears in {where}"
