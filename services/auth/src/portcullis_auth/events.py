"""Structured audit events: one log line per issue, refresh, revocation, reuse.

Events name tokens by id (`jti`, grant `sid`), never by value. Fields are
rendered `key=value` so the line stays greppable in any log pipeline.
"""

from __future__ import annotations

import logging

logger = logging.getLogger("portcullis.events")


def emit(event: str, level: int = logging.INFO, **fields: object) -> None:
    rendered = " ".join(f"{key}={value}" for key, value in fields.items() if value is not None)
    logger.log(level, "event=%s %s", event, rendered)
