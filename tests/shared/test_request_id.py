"""Request ids and JSON log lines, on a small app with the services' `Observability` mounted."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
from litestar import Litestar, get
from litestar.exceptions import NotAuthorizedException
from litestar.testing import AsyncTestClient

from portcullis_shared.logs import BatchingHandler
from portcullis_shared.observability import Observability, ObservabilitySettings
from portcullis_shared.request_id import MAX_LENGTH, accepted_request_id, current_request_id

GENERATED = re.compile(r"[0-9a-f]{32}")
logger = logging.getLogger("portcullis.test")


@get("/hello")
async def hello() -> dict[str, str | None]:
    logger.info("saying hello")
    return {"request_id": current_request_id()}


@get("/refused")
async def refused() -> None:
    raise NotAuthorizedException("no")


def build_app(log_format: str = "text") -> Litestar:
    observability = Observability(
        ObservabilitySettings(log_format=log_format), service_name="portcullis-test"
    )
    return Litestar(route_handlers=[hello, refused], plugins=[observability])


@pytest.fixture
async def http() -> AsyncIterator[AsyncTestClient[Litestar]]:
    async with AsyncTestClient(app=build_app()) as client:
        yield client


def written_lines(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    """Every line the app's log handler has written, each parsed as a JSON object."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, BatchingHandler):
            handler.flush()
    return [json.loads(line) for line in capsys.readouterr().err.splitlines()]


@pytest.mark.parametrize(
    "header",
    [
        "3f2b8c1e-4a5d-4f6e-8a7b-9c0d1e2f3a4b",
        "0123456789abcdef0123456789abcdef",
        "Root.1_abc-DEF",
        "x" * MAX_LENGTH,
    ],
)
async def test_a_well_formed_request_id_is_kept_and_echoed(
    http: AsyncTestClient[Litestar], header: str
) -> None:
    answer = await http.get("/hello", headers={"X-Request-ID": header})
    assert answer.status_code == 200
    assert answer.headers["X-Request-ID"] == header
    assert answer.json() == {"request_id": header}


@pytest.mark.parametrize(
    "header",
    [
        b"",
        b"x" * (MAX_LENGTH + 1),
        b"two words",
        b'quote" level=ERROR',
        b"key=value",
        b"caf\xc3\xa9",
        b"tab\tinside",
        b"semi;colon",
    ],
)
async def test_a_malformed_request_id_is_replaced(
    http: AsyncTestClient[Litestar], header: bytes
) -> None:
    answer = await http.get("/hello", headers={b"X-Request-ID": header})
    assert answer.status_code == 200
    replaced = answer.headers["X-Request-ID"]
    assert GENERATED.fullmatch(replaced)
    assert answer.json() == {"request_id": replaced}


async def test_a_missing_request_id_is_made_fresh_for_each_request(
    http: AsyncTestClient[Litestar],
) -> None:
    first = await http.get("/hello")
    second = await http.get("/hello")
    ids = [first.headers["X-Request-ID"], second.headers["X-Request-ID"]]
    assert all(GENERATED.fullmatch(value) for value in ids)
    assert ids[0] != ids[1]
    assert first.json() == {"request_id": ids[0]}


@pytest.mark.parametrize(("path", "status"), [("/refused", 401), ("/nowhere", 404)])
async def test_error_answers_carry_the_request_id_too(
    http: AsyncTestClient[Litestar], path: str, status: int
) -> None:
    answer = await http.get(path, headers={"X-Request-ID": "err-1"})
    assert answer.status_code == status
    assert answer.headers["X-Request-ID"] == "err-1"
    assert answer.headers.get_list("X-Request-ID") == ["err-1"]


async def test_no_request_id_is_current_outside_a_request(
    http: AsyncTestClient[Litestar],
) -> None:
    await http.get("/hello", headers={"X-Request-ID": "inside"})
    assert current_request_id() is None


async def test_json_lines_carry_the_id_of_the_request_that_logged_them(
    capsys: pytest.CaptureFixture[str],
) -> None:
    async with AsyncTestClient(app=build_app("json")) as http:
        capsys.readouterr()
        await http.get("/hello", headers={"X-Request-ID": "req-one"})
        await http.get("/hello", headers={"X-Request-ID": "req-two"})
        logger.info("between requests")
        lines = written_lines(capsys)

    hellos = [line for line in lines if line["message"] == "saying hello"]
    assert [line["request_id"] for line in hellos] == ["req-one", "req-two"]
    assert set(hellos[0]) == {"time", "level", "logger", "message", "request_id"}
    assert hellos[0]["level"] == "INFO"
    assert hellos[0]["logger"] == "portcullis.test"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", hellos[0]["time"])
    (between,) = [line for line in lines if line["message"] == "between requests"]
    assert "request_id" not in between


def test_only_a_bounded_safe_header_is_accepted() -> None:
    assert accepted_request_id(b"abc-123") == "abc-123"
    assert GENERATED.fullmatch(accepted_request_id(None))
    assert GENERATED.fullmatch(accepted_request_id(b"abc\r\nforged: line"))
    assert GENERATED.fullmatch(accepted_request_id(b"abc\n"))
