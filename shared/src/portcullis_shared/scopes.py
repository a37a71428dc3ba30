"""The scope model: configured scopes, their descriptions, and scope strings.

RFC 6749 §3.3: a scope is a space-delimited list of case-sensitive strings.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

# RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
_SCOPE_TOKEN = re.compile(r"^[\x21\x23-\x5b\x5d-\x7e]+$")

DEFAULT_SCOPES: Mapping[str, str] = {
    "read-posts": "Read posts",
    "write-posts": "Create and edit your own posts",
    "admin": "Administer every post",
}
DEFAULT_PRIVILEGED_SCOPES: frozenset[str] = frozenset({"admin"})


class MalformedScopeError(ValueError):
    """A scope string that RFC 6749 §3.3 does not allow."""


def parse_scope(value: str) -> frozenset[str]:
    """Split a scope parameter into its scope tokens; reject what §3.3 forbids."""
    tokens = value.split(" ")
    if any(not _SCOPE_TOKEN.match(token) for token in tokens):
        raise MalformedScopeError("scope must be space-separated scope tokens")
    return frozenset(tokens)


def format_scope(scopes: Iterable[str]) -> str:
    """The canonical scope string: sorted, space-separated."""
    return " ".join(sorted(scopes))


def is_scope_token(value: str) -> bool:
    return bool(_SCOPE_TOKEN.match(value))


@dataclass(frozen=True, slots=True)
class ScopeRegistry:
    """The scopes a deployment knows, with descriptions and the privileged set."""

    descriptions: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_SCOPES))
    privileged: frozenset[str] = DEFAULT_PRIVILEGED_SCOPES

    def __post_init__(self) -> None:
        unknown = self.privileged - set(self.descriptions)
        if unknown:
            raise ValueError(f"privileged scopes not configured: {format_scope(unknown)}")
        bad = [name for name in self.descriptions if not is_scope_token(name)]
        if bad:
            raise ValueError(f"invalid scope names: {', '.join(bad)}")

    @property
    def names(self) -> frozenset[str]:
        return frozenset(self.descriptions)

    def unknown(self, scopes: Iterable[str]) -> frozenset[str]:
        return frozenset(scopes) - self.names

    def is_privileged(self, scope: str) -> bool:
        return scope in self.privileged
