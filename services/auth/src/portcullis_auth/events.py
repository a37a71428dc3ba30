"""Structured audit events: one log line per issue, refresh, revocation, reuse.

Events name tokens by id (`jti`, grant `sid`), never by value. Fields are
rendered `key=value` so the line stays greppable in any log pipeline.
"""

from __future__ import annotations

import logging

logger = logging.getLogger("portcullis.events")

_THIS_FILE = __file__


def emit(event: str, level: int = logging.INFO, **fields: object) -> None:
    if not logger.isEnabledFor(level):
        return
    rendered = " ".join(f"{key}={value}" for key, value in fields.items() if value is not None)
    # The record is made here rather than by `logger.log`, which walks the stack to
    # find its caller on every call: one line per token, and the caller is always this.
    record = logger.makeRecord(
        logger.name, level, _THIS_FILE, 0, "event=%s %s", (event, rendered), None, "emit"
    )
    logger.handle(record)
