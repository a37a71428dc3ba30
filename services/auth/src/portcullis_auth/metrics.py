"""The auth service's own metrics: tokens issued, refresh token reuse, throttled logins,
and revocations recorded, published to Redis and waiting.

Most are counted from the audit events as `events.emit` logs them, the one place
every event passes: what the log says happened is what the counters count, and
the protocol core stays free of any metrics library. Label values are fixed by
the code (event names, grant types, revocation kinds), never read from a request.
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Iterable, Mapping

from prometheus_client import Counter, Gauge

AUDIT_EVENTS = Counter(
    "portcullis_auth_events",
    "Audit events by name, one for each `event=` line the auth service logs.",
    ["event"],
)
TOKENS_ISSUED = Counter(
    "portcullis_tokens_issued",
    "Access tokens issued, by grant type (refresh_token: a refresh; personal_access: a "
    "personal access token).",
    ["grant_type"],
)
REFRESH_TOKEN_REUSE = Counter(
    "portcullis_refresh_token_reuse",
    "Rotated refresh tokens presented again outside the grace window; each revoked its family.",
)
LOGINS_THROTTLED = Counter(
    "portcullis_logins_throttled",
    "Password logins refused with 429 by the back-off, before the password was checked.",
)
REVOCATIONS_RECORDED = Counter(
    "portcullis_revocations_recorded",
    "Revocations committed to the database, by kind (jti, sid, user, client).",
    ["kind"],
)
REVOCATIONS_PUBLISHED = Counter(
    "portcullis_revocations_published",
    "Revocations the request that made them landed in Redis within its deadline, by kind; "
    "the sync loop lands the others.",
    ["kind"],
)
REVOCATION_LIST_REBUILDS = Counter(
    "portcullis_revocation_list_rebuilds",
    "Rebuilds of the Redis revocation list from the database (found emptied, without its "
    "marker, or ahead of the database).",
)
REVOCATIONS_WAITING = Gauge(
    "portcullis_revocations_waiting",
    "Unexpired revocations committed to the database that Redis is not known to hold: 0 "
    "after each sync that levelled the list, counted while syncs fail.",
    # Every worker syncs and measures the same list: the latest measurement is the answer.
    multiprocess_mode="mostrecent",
)


def count_event(event: str, fields: Mapping[str, object]) -> None:
    """Count one audit event, and what it says for the counters that follow it."""
    AUDIT_EVENTS.labels(event).inc()
    if event == "token_issued":
        TOKENS_ISSUED.labels(str(fields.get("grant_type"))).inc()
    elif event == "token_refreshed":
        TOKENS_ISSUED.labels("refresh_token").inc()
    elif event == "refresh_token_reused":
        REFRESH_TOKEN_REUSE.inc()
    elif event == "login_throttled":
        LOGINS_THROTTLED.inc()


def count_by_kind(counter: Counter, kinds: Iterable[str]) -> None:
    """Add each revocation kind's number of rows to `counter`."""
    for kind, number in Tally(kinds).items():
        counter.labels(kind).inc(number)
