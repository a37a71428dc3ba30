"""Logging for both services: records leave the request path in batches.

Litestar's default `queue_listener` wakes its writer thread for every record.
Under load each wake-up is a thread switch and a fight for the GIL on the
serving core: with one audit event per token, about 150 µs of a ~800 µs
token request went to logging. `BatchingHandler` only appends the record to a
deque; a writer thread formats and writes whatever has gathered, a few times a
second, with one write per batch. A record reaches stderr at most `interval`
seconds late; `close()` (run at exit) writes what is left.

`PORTCULLIS_LOG_FORMAT=json` makes each record one JSON object on one line
(`JsonFormatter`), for log pipelines that index fields. The writer thread has no
request context, so `emit` takes the request's id (`request_id.py`) along with
the rendered message; formatting, JSON included, stays on the writer thread.
"""

from __future__ import annotations

import atexit
import logging
import sys
import threading
import weakref
from collections import deque
from datetime import UTC, datetime
from typing import Any, TextIO

import msgspec
from litestar.logging import LoggingConfig

from portcullis_shared.request_id import current_request_id

DEFAULT_INTERVAL = 0.05
MAX_PENDING = 100_000
"""Records waiting to be written, at most: should stderr stall, the oldest are dropped
(and counted in a line once it moves again) rather than memory growing without end."""
LOG_FORMATS = ("text", "json")
EVENT_FIELDS = "event_fields"
"""The record attribute (`extra={EVENT_FIELDS: {...}}`) whose items a JSON line carries as keys."""
SERVER_LOGGERS = ("_granian", "granian.access")


class BatchingHandler(logging.Handler):
    """Formats and writes records on a thread of its own, a batch at a time.

    The stream is looked up when written (`sys.stderr` unless given), so a
    stderr replaced after start-up, as test capture does, is the one written to.
    `close()` writes what is left and stops the thread; a record logged after
    that starts it again. That matters: `logging.config.dictConfig`, which
    uvicorn runs after the app is built, closes every handler it finds, while
    the root logger keeps this one.
    """

    def __init__(self, stream: TextIO | None = None, interval: float = DEFAULT_INTERVAL) -> None:
        super().__init__()
        self._stream = stream
        self._interval = interval
        self._pending: deque[logging.LogRecord] = deque(maxlen=MAX_PENDING)
        self._dropped = 0
        self._write_lock = threading.Lock()
        self._closing = threading.Event()
        self._writer: threading.Thread | None = None
        _LIVE.add(self)

    def emit(self, record: logging.LogRecord) -> None:
        # Rendered now, as QueueHandler does: the arguments may change before the write.
        try:
            record.msg = record.getMessage()
            record.args = None
        except Exception:  # noqa: BLE001 - logging must never raise into the caller
            self.handleError(record)
            return
        record.request_id = current_request_id()
        if len(self._pending) == MAX_PENDING:
            self._dropped += 1  # the oldest goes; approximate under threads, never raises
        self._pending.append(record)
        if self._writer is None:
            self._start_writer()

    def flush(self) -> None:
        """Write every record handed over so far."""
        with self._write_lock:
            lines = []
            while self._pending:
                record = self._pending.popleft()
                try:
                    lines.append(self.format(record))
                except Exception:  # noqa: BLE001
                    self.handleError(record)
            dropped, self._dropped = self._dropped, 0
            if dropped:
                lines.append(f"logging: {dropped} records dropped while the log stream stalled")
            if lines:
                stream = self._stream or sys.stderr
                try:
                    stream.write("\n".join(lines) + "\n")
                    stream.flush()
                except (OSError, ValueError):
                    pass  # stderr closed or gone: nothing better to do with a log line

    def close(self) -> None:
        with self.lock:  # type: ignore[union-attr]  # Handler.createLock always sets it
            writer, self._writer = self._writer, None
            if writer is not None:
                self._closing.set()
                if writer is not threading.current_thread():
                    writer.join(timeout=2)
                self._closing.clear()
        self.flush()
        super().close()

    def _start_writer(self) -> None:
        with self.lock:  # type: ignore[union-attr]
            if self._writer is None:
                self._writer = threading.Thread(
                    target=self._write_until_closed, name="portcullis-log-writer", daemon=True
                )
                self._writer.start()

    def _write_until_closed(self) -> None:
        while not self._closing.wait(self._interval):
            self.flush()


_LIVE: weakref.WeakSet[BatchingHandler] = weakref.WeakSet()


@atexit.register
def _write_what_is_left() -> None:
    for handler in list(_LIVE):
        handler.flush()


# Characters that end a line for some readers (str.splitlines among them) though JSON
# allows them raw in a string; escaped, a line stays one record whatever a message holds.
_LINE_BREAKS = str.maketrans({"\x85": "\\u0085", "\u2028": "\\u2028", "\u2029": "\\u2029"})
_JSON = msgspec.json.Encoder(enc_hook=str)


class JsonFormatter(logging.Formatter):
    """One JSON object a line: `time` (UTC, RFC 3339), `level`, `logger`, `message`;
    `request_id` when logged while serving a request; an audit event's fields as keys
    of their own (never replacing those); `exception` when one was logged with it."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = getattr(record, "request_id", None)
        if request_id is not None:
            line["request_id"] = request_id
        fields = getattr(record, EVENT_FIELDS, None)
        if isinstance(fields, dict):
            for key, value in fields.items():
                line.setdefault(key, value)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        text = _JSON.encode(line).decode("utf-8")
        return text if text.isascii() else text.translate(_LINE_BREAKS)


def logging_config(log_format: str = "text") -> LoggingConfig:
    """Both services' logging: INFO and up to stderr through a `BatchingHandler`,
    no exception logged with its stack (an error answer says enough, and a frame's
    locals could hold a secret). `log_format`: "text" or "json" (`JsonFormatter`)."""
    if log_format not in LOG_FORMATS:
        raise ValueError(f"log_format must be one of {', '.join(LOG_FORMATS)}, got {log_format!r}")
    formatter = "json" if log_format == "json" else "standard"
    return LoggingConfig(
        formatters={"json": {"()": JsonFormatter}},  # Litestar adds its "standard"
        handlers={
            # Litestar's own logger writes to "queue_listener": the same handler serves it.
            "queue_listener": {"()": BatchingHandler, "formatter": formatter},
        },
        root={"level": "INFO", "handlers": ["queue_listener"]},
        log_exceptions="never",
        disable_stack_trace={Exception},
    )


def server_log_config(log_format: str) -> dict[str, Any] | None:
    """A `logging.config` dict for the server's own loggers (Granian's `log_dictconfig`),
    or None to keep the server's. The server writes its lines (listening, workers
    started and stopped) before and beside any app, through handlers of its own: in
    JSON mode those lines must be JSON objects too."""
    if log_format != "json":
        return None
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "portcullis_shared.logs.JsonFormatter"}},
        "handlers": {
            "server": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "stream": "ext://sys.stderr",
            },
        },
        "loggers": {
            name: {"handlers": ["server"], "level": "INFO", "propagate": False}
            for name in SERVER_LOGGERS
        },
    }
