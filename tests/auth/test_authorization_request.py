"""The authorization endpoint's request rules (RFC 6749 §4.1.1, §4.1.2.1, RFC 7636, RFC 8252)."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from portcullis_auth.oauth2.authorization import (
    AuthorizationPageError,
    AuthorizationRedirectError,
    RedirectTarget,
    answer_uri,
    validate_authorization_request,
)
from portcullis_auth.oauth2.pkce import challenge_of
from portcullis_auth.oauth2.redirect_uris import matches_registered
from portcullis_auth.records import Client
from portcullis_shared.scopes import ScopeRegistry

CHALLENGE = challenge_of("v" * 43)
APP = Client(
    id="client_app",
    grant_types=("authorization_code",),
    scopes=("read-posts", "write-posts"),
    default_scopes=("read-posts",),
    audiences=("posts",),
    redirect_uris=("https://app.example/callback", "http://127.0.0.1/cb", "http://[::1]/cb"),
    name="An app",
    first_party=False,
    personal_access=False,
    introspect=False,
    version=1,
    secret_hash=None,
)


class Clients:
    async def authenticate(self, client_id: str, secret: str | None) -> Client | None:
        raise AssertionError("an authorization request authenticates no client")

    async def find(self, client_id: str) -> Client | None:
        return APP if client_id == APP.id else None


def params(**changes: str | None) -> dict[str, str]:
    base: dict[str, str | None] = {
        "response_type": "code",
        "client_id": APP.id,
        "redirect_uri": "https://app.example/callback",
        "state": "a state & more/=",
        "code_challenge": CHALLENGE,
        "code_challenge_method": "S256",
        "scope": "read-posts",
    }
    base.update(changes)
    return {name: value for name, value in base.items() if value is not None}


async def validate(**changes: str | None) -> object:
    return await validate_authorization_request(params(**changes), Clients(), ScopeRegistry())


async def test_a_well_formed_request_is_accepted() -> None:
    accepted = await validate()
    assert accepted.client == APP  # type: ignore[attr-defined]
    assert accepted.requested == {"read-posts"}  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "changes",
    [
        {"client_id": "client_unknown"},
        {"client_id": None},
        {"redirect_uri": None},
        {"redirect_uri": "https://app.example/callback/"},
        {"redirect_uri": "https://evil.example/callback"},
        {"redirect_uri": "https://app.example/callback?x=1"},
        {"redirect_uri": "http://127.0.0.1.evil.example/cb"},
        {"redirect_uri": "http://localhost:5000/cb"},
    ],
    ids=[
        "unknown-client",
        "no-client",
        "no-redirect",
        "trailing-slash",
        "other-host",
        "added-query",
        "lookalike-loopback",
        "localhost-is-no-loopback-literal",
    ],
)
async def test_a_doubtful_client_or_redirect_is_shown_never_redirected(
    changes: dict[str, str | None],
) -> None:
    with pytest.raises(AuthorizationPageError):
        await validate(**changes)


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"code_challenge": None}, "invalid_request"),
        ({"code_challenge_method": "plain"}, "invalid_request"),
        ({"code_challenge_method": None}, "invalid_request"),
        ({"code_challenge": "short"}, "invalid_request"),
        ({"scope": "admin"}, "invalid_scope"),
        ({"scope": "no-such-scope"}, "invalid_scope"),
        ({"resource": "billing"}, "invalid_target"),
    ],
)
async def test_other_errors_go_back_to_the_client(
    changes: dict[str, str | None], error: str
) -> None:
    with pytest.raises(AuthorizationRedirectError) as redirected:
        await validate(**changes)
    assert redirected.value.error.error == error
    assert redirected.value.target.state == "a state & more/="


@pytest.mark.parametrize(
    "requested",
    ["http://127.0.0.1:49152/cb", "http://127.0.0.1/cb", "http://[::1]:8080/cb"],
)
def test_a_loopback_redirect_may_use_any_port(requested: str) -> None:
    assert matches_registered(requested, APP.redirect_uris)


@pytest.mark.parametrize(
    "requested",
    ["http://127.0.0.1:49152/other", "https://127.0.0.1:8443/cb", "http://127.0.0.1:x/cb"],
)
def test_a_loopback_redirect_keeps_its_path_and_scheme(requested: str) -> None:
    assert not matches_registered(requested, APP.redirect_uris)


def test_an_answer_carries_state_byte_for_byte_and_the_issuer() -> None:
    target = RedirectTarget("https://app.example/callback?keep=1", "a state & more/=")
    answered = urlsplit(answer_uri(target, "https://auth.example", code="c0de"))
    query = parse_qs(answered.query)
    assert query == {
        "keep": ["1"],
        "code": ["c0de"],
        "state": ["a state & more/="],
        "iss": ["https://auth.example"],
    }
