"""When two usernames are the same: emails compare case-insensitively, trimmed.

Logins look users up, and the login throttle counts attempts, by this form.
"""

from __future__ import annotations


def normalise_username(username: str) -> str:
    return username.strip().lower()
