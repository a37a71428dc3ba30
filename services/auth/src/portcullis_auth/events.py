"""Structured audit events: one log line per issue, refresh, revocation, reuse.

Events name tokens by id (`jti`, grant `sid`), never by value. Fields are
rendered `key=value` so the line stays greppable in any log pipeline, and ride
on the record as well (`EVENT_FIELDS`): a JSON log line carries `event` and each
field as keys of their own, for pipelines that index them. Every event is also
counted (`metrics.py`).
"""

from __future__ import annotations

import logging

from portcullis_auth.metrics import count_event
from portcullis_shared.logs import EVENT_FIELDS

logger = logging.getLogger("portcullis.events")

_THIS_FILE = __file__


def emit(event: str, level: int = logging.INFO, **fields: object) -> None:
    count_event(event, fields)  # whether or not the line is logged
    if not logger.isEnabledFor(level):
        return
    present = {key: value for key, value in fields.items() if value is not None}
    rendered = " ".join(f"{key}={value}" for key, value in present.items())
    # The record is made here rather than by `logger.log`, which walks the stack to
    # find its caller on every call: one line per token, and the caller is always this.
    # The values are ids, names and numbers: nothing that changes before the line is written.
    record = logger.makeRecord(
        logger.name,
        level,
        _THIS_FILE,
        0,
        "event=%s %s",
        (event, rendered),
        None,
        "emit",
        {EVENT_FIELDS: {"event": event, **present}},
    )
    logger.handle(record)
