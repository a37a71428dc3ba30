"""Audit events the core reports: what was issued, and what was refused and why.

Events name tokens by id (`jti`, grant `sid`), never by value.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class AuditEvent:
    name: str
    """token_issued, token_refreshed, login_failed, refresh_token_repeated, ..."""
    fields: dict[str, object] = field(default_factory=dict)
