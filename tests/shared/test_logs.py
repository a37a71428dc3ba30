"""The services' log handler: records leave the request path in order, in batches."""

from __future__ import annotations

import io
import json
import logging
import logging.config
import sys
import time

import pytest

from portcullis_shared.logs import (
    EVENT_FIELDS,
    BatchingHandler,
    JsonFormatter,
    logging_config,
    server_log_config,
)


def _record(message: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord("portcullis.test", logging.INFO, __file__, 1, message, args, None)


def _wait_for(stream: io.StringIO, text: str, timeout: float = 2.0) -> None:
    deadline = time.monotonic() + timeout
    while text not in stream.getvalue():
        assert time.monotonic() < deadline, f"{text!r} never written: {stream.getvalue()!r}"
        time.sleep(0.01)


def test_records_are_written_in_order_by_the_writer_thread() -> None:
    stream = io.StringIO()
    handler = BatchingHandler(stream, interval=0.01)
    try:
        for number in range(100):
            handler.handle(_record("line %d", number))
        _wait_for(stream, "line 99\n")
        assert stream.getvalue().splitlines() == [f"line {n}" for n in range(100)]
    finally:
        handler.close()


def test_the_message_is_rendered_when_logged_not_when_written() -> None:
    stream = io.StringIO()
    handler = BatchingHandler(stream, interval=60)
    try:
        fields = {"state": "before"}
        handler.handle(_record("%s", fields))
        fields["state"] = "after"
    finally:
        handler.close()
    assert stream.getvalue() == "{'state': 'before'}\n"


def test_a_stalled_stream_bounds_what_waits_and_says_what_was_dropped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("portcullis_shared.logs.MAX_PENDING", 3)
    stream = io.StringIO()
    handler = BatchingHandler(stream, interval=60)  # the writer never wakes: a stall
    for number in range(5):
        handler.handle(_record("line %d", number))
    handler.close()
    assert stream.getvalue().splitlines() == [
        "line 2",
        "line 3",
        "line 4",
        "logging: 2 records dropped while the log stream stalled",
    ]


def test_close_writes_what_is_left() -> None:
    stream = io.StringIO()
    handler = BatchingHandler(stream, interval=60)
    handler.handle(_record("last words"))
    assert stream.getvalue() == ""
    handler.close()
    assert stream.getvalue() == "last words\n"


def test_a_closed_handler_still_attached_keeps_writing() -> None:
    """uvicorn's logging setup closes every handler after the app has set its own."""
    stream = io.StringIO()
    handler = BatchingHandler(stream, interval=0.01)
    handler.handle(_record("before"))
    handler.close()
    handler.handle(_record("after"))
    try:
        _wait_for(stream, "after\n")
        assert stream.getvalue() == "before\nafter\n"
    finally:
        handler.close()


def test_without_a_stream_it_writes_to_the_stderr_of_the_moment(
    capsys: pytest.CaptureFixture[str],
) -> None:
    handler = BatchingHandler(interval=60)
    handler.handle(_record("to stderr"))
    handler.flush()
    handler.close()
    assert capsys.readouterr().err == "to stderr\n"


def test_the_services_log_through_it() -> None:
    config = logging_config()
    config.configure()
    try:
        handlers = logging.getLogger().handlers
        assert [type(h) for h in handlers] == [BatchingHandler]
        assert logging.getLogger("litestar").handlers == handlers
    finally:
        for handler in logging.getLogger().handlers:
            handler.close()
        logging.getLogger().handlers.clear()


def _json_lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_json_lines_are_one_object_per_record_whatever_the_message_holds() -> None:
    stream = io.StringIO()
    handler = BatchingHandler(stream, interval=60)
    handler.setFormatter(JsonFormatter())
    forged = 'user "x"\n{"level": "CRITICAL"}\r\u2028\u2029\x85\x00 done'
    handler.handle(_record("%s", forged))
    handler.handle(_record("plain"))
    handler.close()
    lines = _json_lines(stream)
    assert [line["message"] for line in lines] == [forged, "plain"]
    assert stream.getvalue().count("\n") == 2


def test_json_lines_carry_an_events_fields_as_keys_of_their_own() -> None:
    stream = io.StringIO()
    handler = BatchingHandler(stream, interval=60)
    handler.setFormatter(JsonFormatter())
    record = _record("event=token_issued grant_type=password")
    setattr(
        record,
        EVENT_FIELDS,
        {"event": "token_issued", "grant_type": "password", "level": "forged", "count": 3},
    )
    handler.handle(record)
    handler.close()
    (line,) = _json_lines(stream)
    assert line["event"] == "token_issued"
    assert line["grant_type"] == "password"
    assert line["count"] == 3
    assert line["level"] == "INFO"  # a field never replaces the line's own keys
    assert line["message"] == "event=token_issued grant_type=password"


def test_json_lines_hold_a_logged_exception_in_one_line() -> None:
    stream = io.StringIO()
    handler = BatchingHandler(stream, interval=60)
    handler.setFormatter(JsonFormatter())
    try:
        raise ValueError("broken")
    except ValueError:
        record = logging.LogRecord(
            "portcullis.test", logging.ERROR, __file__, 1, "failed", None, sys.exc_info()
        )
    handler.handle(record)
    handler.close()
    (line,) = _json_lines(stream)
    assert "ValueError: broken" in str(line["exception"])


def test_the_services_write_json_lines_when_asked() -> None:
    config = logging_config("json")
    config.configure()
    try:
        (handler,) = logging.getLogger().handlers
        assert isinstance(handler.formatter, JsonFormatter)
    finally:
        for handler in logging.getLogger().handlers:
            handler.close()
        logging.getLogger().handlers.clear()
    with pytest.raises(ValueError, match="log_format"):
        logging_config("xml")


def test_the_servers_own_lines_are_json_too_when_asked() -> None:
    assert server_log_config("text") is None
    config = server_log_config("json")
    assert config is not None
    # What Granian hands to logging.config.dictConfig, in its process and each worker's.
    formatter = config["formatters"]["json"]["()"]
    assert logging.config.BaseConfigurator({}).resolve(formatter) is JsonFormatter
    assert config["handlers"]["server"]["formatter"] == "json"
    for name in ("_granian", "granian.access"):
        assert config["loggers"][name]["handlers"] == ["server"]
