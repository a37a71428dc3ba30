"""Logging for both services: records leave the request path in batches.

Litestar's default `queue_listener` wakes its writer thread for every record.
Under load each wake-up is a thread switch and a fight for the GIL on the
serving core: with one audit event per token, about 150 µs of a ~800 µs
token request went to logging. `BatchingHandler` only appends the record to a
deque; a writer thread formats and writes whatever has gathered, a few times a
second, with one write per batch. A record reaches stderr at most `interval`
seconds late; `close()` (run at exit) writes what is left.
"""

from __future__ import annotations

import atexit
import logging
import sys
import threading
import weakref
from collections import deque
from typing import TextIO

from litestar.logging import LoggingConfig

DEFAULT_INTERVAL = 0.05


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
        self._pending: deque[logging.LogRecord] = deque()
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


def logging_config() -> LoggingConfig:
    """Both services' logging: INFO and up to stderr through a `BatchingHandler`,
    no exception logged with its stack (an error answer says enough, and a frame's
    locals could hold a secret)."""
    return LoggingConfig(
        handlers={
            # Litestar's own logger writes to "queue_listener": the same handler serves it.
            "queue_listener": {"()": BatchingHandler, "formatter": "standard"},
        },
        root={"level": "INFO", "handlers": ["queue_listener"]},
        log_exceptions="never",
        disable_stack_trace={Exception},
    )
