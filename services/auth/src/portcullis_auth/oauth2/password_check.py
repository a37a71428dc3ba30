"""A throttled password check: what the password grant and the sign-in page share.

Counted before the password is checked, so parallel guesses all count
(per (username, client IP) and per IP, with a back-off); an attempt whose
password was never checked (no room in the hashing queue, the caller gone, a
backend down) counts for nothing, so a real user's retries during a flood never
lock them out.
"""

from __future__ import annotations

import contextlib

from portcullis_auth.oauth2.audit import AuditEvent
from portcullis_auth.oauth2.errors import InvalidGrantError, TooManyAttemptsError
from portcullis_auth.oauth2.ports import CallerGone, LoginThrottle, UserAuthenticator
from portcullis_auth.records import User


async def check_password(
    users: UserAuthenticator,
    throttle: LoginThrottle,
    *,
    username: str,
    password: str,
    client_ip: str,
    client_id: str,
    caller_gone: CallerGone | None = None,
) -> User:
    """The active user with this password; `invalid_grant` (reported as `login_failed`)
    or `TooManyAttemptsError` (reported as `login_throttled`) otherwise."""
    users.refuse_if_busy(client_ip)
    wait = await throttle.begin_attempt(username, client_ip)
    if wait > 0:
        raise TooManyAttemptsError(wait, audit=AuditEvent("login_throttled", {"client": client_id}))
    try:
        user = await users.authenticate(
            username, password, client_ip=client_ip, caller_gone=caller_gone
        )
    except BaseException:
        with contextlib.suppress(Exception):
            await throttle.withdraw(username, client_ip)
        raise
    if user is None:
        raise InvalidGrantError(
            "invalid username or password",
            audit=AuditEvent("login_failed", {"client": client_id}),
        )
    await throttle.succeeded(username, client_ip)
    return user
