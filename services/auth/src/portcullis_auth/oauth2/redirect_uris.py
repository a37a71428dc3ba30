"""Which redirect URIs an authorization request may name (RFC 6749 §3.1.2, RFC 9700 §4.1).

Exactly a registered one, character for character, with one exception: a
native app listening on the loopback interface picks its port when it
starts, so a registered `http://127.0.0.1/...` or `http://[::1]/...` matches
the same URI on any port (RFC 8252 §7.3).
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

from portcullis_auth.records import LOOPBACK_HOSTS


def matches_registered(requested: str, registered: Iterable[str]) -> bool:
    for candidate in registered:
        if requested == candidate or _same_loopback_uri(requested, candidate):
            return True
    return False


def _same_loopback_uri(requested: str, registered: str) -> bool:
    try:
        asked, known = urlsplit(requested), urlsplit(registered)
        asked.port, known.port  # noqa: B018 - a malformed port raises ValueError
    except ValueError:
        return False
    return (
        asked.scheme == known.scheme == "http"
        and asked.hostname in LOOPBACK_HOSTS
        and asked.hostname == known.hostname
        and asked.netloc.startswith(("127.0.0.1", "[::1]"))  # a literal, no userinfo
        and (asked.path, asked.query, asked.fragment) == (known.path, known.query, known.fragment)
    )
