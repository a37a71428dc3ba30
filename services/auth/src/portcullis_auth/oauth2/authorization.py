"""The authorization endpoint's request (RFC 6749 §4.1.1, RFC 7636, RFC 9207).

Validated in the order §4.1.2.1 sets: while the client or its redirect URI is
in doubt nothing may be sent to that URI, so those errors are shown to the
user (`AuthorizationPageError`); every other error goes back to the client
at its redirect URI (`AuthorizationRedirectError`) with `state` as it came
and the issuer (`iss`, RFC 9207), so a client can tell which server
answered.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit, urlunsplit

from portcullis_auth.oauth2.errors import (
    InvalidScopeError,
    OAuth2Error,
    UnauthorizedClientError,
    UnsupportedResponseTypeError,
)
from portcullis_auth.oauth2.pkce import check_challenge
from portcullis_auth.oauth2.ports import ClientStore
from portcullis_auth.oauth2.redirect_uris import matches_registered
from portcullis_auth.oauth2.scopes import parse_requested_scope, resolve_audience, resolve_scopes
from portcullis_auth.records import Client, User
from portcullis_shared.scopes import ScopeRegistry, format_scope

GRANT_TYPE = "authorization_code"
PARAMETERS = (
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "code_challenge",
    "code_challenge_method",
    "resource",
)
"""What an authorization request may carry; the consent form carries them on."""


class AuthorizationPageError(Exception):
    """The client or its redirect URI cannot be trusted: told to the user, never
    redirected (§4.1.2.1)."""


@dataclass(frozen=True, slots=True)
class AuthorizationRequest:
    client: Client
    redirect_uri: str
    state: str | None
    requested: frozenset[str] | None
    """The scopes asked for; None: the client's defaults."""
    audience: str
    code_challenge: str

    def scopes_for(self, user: User, registry: ScopeRegistry) -> frozenset[str]:
        """The scopes this user may grant the client (privileged ones only as an admin)."""
        return resolve_scopes(self.requested, self.client, user, registry)


@dataclass(frozen=True, slots=True)
class RedirectTarget:
    redirect_uri: str
    state: str | None


class AuthorizationRedirectError(Exception):
    """An error to send back to the client's redirect URI."""

    def __init__(self, request: RedirectTarget, error: OAuth2Error) -> None:
        super().__init__(error.description)
        self.target = request
        self.error = error


def answer_uri(target: RedirectTarget, issuer: str, **params: str) -> str:
    """The redirect URI with the answer's parameters added to its query (§4.1.2), the
    `state` as it came, and `iss` (RFC 9207 §2)."""
    parts = urlsplit(target.redirect_uri)
    answer = dict(params)
    if target.state is not None:
        answer["state"] = target.state
    answer["iss"] = issuer
    query = "&".join(part for part in (parts.query, urlencode(answer)) if part)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


def error_uri(target: RedirectTarget, issuer: str, error: OAuth2Error) -> str:
    return answer_uri(target, issuer, error=error.error, error_description=error.description)


async def validate_authorization_request(
    params: Mapping[str, str], clients: ClientStore, registry: ScopeRegistry
) -> AuthorizationRequest:
    client_id = params.get("client_id")
    client = None if client_id is None else await clients.find(client_id)
    if client is None:
        raise AuthorizationPageError("The application asking for access is not registered.")
    redirect_uri = params.get("redirect_uri")
    if redirect_uri is None:
        raise AuthorizationPageError("The application sent no redirect_uri.")
    if not matches_registered(redirect_uri, client.redirect_uris):
        raise AuthorizationPageError(
            "The application asked to send you back to an address it has not registered."
        )
    target = RedirectTarget(redirect_uri, params.get("state"))
    try:
        if params.get("response_type") != "code":
            raise UnsupportedResponseTypeError("response_type must be code")
        if GRANT_TYPE not in client.grant_types:
            raise UnauthorizedClientError("the client may not use the authorization code grant")
        challenge = check_challenge(
            params.get("code_challenge"), params.get("code_challenge_method")
        )
        requested = parse_requested_scope(params.get("scope"), registry)
        if requested is not None and not requested <= frozenset(client.scopes):
            beyond = format_scope(requested - frozenset(client.scopes))
            raise InvalidScopeError(f"scope not allowed: {beyond}")
        audience = resolve_audience(params.get("resource"), client)
    except OAuth2Error as error:
        raise AuthorizationRedirectError(target, error) from None
    return AuthorizationRequest(
        client=client,
        redirect_uri=redirect_uri,
        state=target.state,
        requested=requested,
        audience=audience,
        code_challenge=challenge,
    )
