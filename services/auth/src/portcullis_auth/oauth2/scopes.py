"""Which scopes and audience a token request gets (RFC 6749 §3.3, RFC 8707).

A scope the client or the user may not have is `invalid_scope`, never
silently dropped. No `scope` means the client's default scopes (less the
privileged ones this principal may not hold).
"""

from __future__ import annotations

from portcullis_auth.oauth2.errors import InvalidScopeError, InvalidTargetError
from portcullis_auth.records import Client, User
from portcullis_shared.scopes import MalformedScopeError, ScopeRegistry, format_scope, parse_scope


def parse_requested_scope(value: str | None, registry: ScopeRegistry) -> frozenset[str] | None:
    """The scopes a request names, checked against the configured ones; None if it names none."""
    if value is None:
        return None
    try:
        requested = parse_scope(value)
    except MalformedScopeError as exc:
        raise InvalidScopeError(str(exc)) from None
    unknown = registry.unknown(requested)
    if unknown:
        # Not echoed: what the server does not know may be a secret in the wrong field.
        raise InvalidScopeError(
            f"{len(unknown)} requested scope(s) unknown; the server's metadata lists "
            "scopes_supported"
        )
    return requested


def resolve_scopes(
    requested: frozenset[str] | None,
    client: Client,
    user: User | None,
    registry: ScopeRegistry,
) -> frozenset[str]:
    """The scopes to grant. `user` is None for a token that speaks for the client."""
    allowed = frozenset(client.scopes) & registry.names
    if user is not None and not user.is_admin:
        # A privileged scope goes to a user token only for an admin user.
        allowed = frozenset(s for s in allowed if not registry.is_privileged(s))
    if requested is None:
        return frozenset(client.default_scopes) & allowed
    refused = requested - allowed
    if refused:
        raise InvalidScopeError(f"scope not allowed: {format_scope(refused)}")
    return requested


def resolve_audience(resource: str | None, client: Client) -> str:
    """RFC 8707: the named resource if the client may name it, else its default."""
    if resource is None:
        if not client.audiences:
            raise InvalidTargetError("the client has no audience configured")
        return client.audiences[0]
    if resource not in client.audiences:
        raise InvalidTargetError("the client may not request that resource")
    return resource
