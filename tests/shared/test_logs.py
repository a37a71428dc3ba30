"""The services' log handler: records leave the request path in order, in batches."""

from __future__ import annotations

import io
import logging
import time

import pytest

from portcullis_shared.logs import BatchingHandler, logging_config


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
