"""Unit tests of the protocol core: request parsing, client credentials, scopes."""

from __future__ import annotations

import base64
import ipaddress
import uuid
from urllib.parse import quote_plus

import pytest

from portcullis_auth.keys.sealing import KeySealer, UnsealError
from portcullis_auth.oauth2.client_auth import extract_client_credentials
from portcullis_auth.oauth2.errors import (
    InvalidClientError,
    InvalidRequestError,
    InvalidScopeError,
    InvalidTargetError,
    UnsupportedGrantTypeError,
)
from portcullis_auth.oauth2.grants.registry import DEFAULT_GRANTS
from portcullis_auth.oauth2.request import TokenRequest, parse_form
from portcullis_auth.oauth2.scopes import parse_requested_scope, resolve_audience, resolve_scopes
from portcullis_auth.records import Client, User
from portcullis_shared.client_ip import client_ip
from portcullis_shared.scopes import ScopeRegistry

FORM = "application/x-www-form-urlencoded"
REGISTRY = ScopeRegistry()


def make_client(**overrides: object) -> Client:
    fields: dict[str, object] = {
        "id": "client_abc",
        "secret_hash": "x" * 64,
        "grant_types": ("password",),
        "scopes": ("read-posts", "write-posts", "admin"),
        "default_scopes": ("read-posts", "admin"),
        "audiences": ("posts", "billing"),
        "redirect_uris": ("https://app.example/callback",),
        "name": "an app",
        "first_party": False,
        "personal_access": False,
        "introspect": False,
        "version": 1,
    }
    fields.update({name: tuple(v) if isinstance(v, list) else v for name, v in overrides.items()})
    return Client(**fields)  # type: ignore[arg-type]


def make_user(*, admin: bool) -> User:
    return User(id=uuid.uuid4(), is_admin=admin, active=True)


# --- form parsing (RFC 6749 §3.1, §3.2) ---------------------------------------


def test_form_parameters_are_parsed() -> None:
    assert parse_form(b"grant_type=password&username=a%40b.c", FORM) == {
        "grant_type": "password",
        "username": "a@b.c",
    }


def test_form_with_charset_parameter_is_accepted() -> None:
    assert parse_form(b"a=1", FORM + "; charset=UTF-8") == {"a": "1"}


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"a=1&a=2", FORM),
        (b"", FORM),
        (b'{"grant_type": "password"}', "application/json"),
        (b"a=1", None),
        (b"a=\xff\xfe", FORM),
        (b"a=1", "multipart/form-data; boundary=x"),
    ],
)
def test_malformed_bodies_are_invalid_request(body: bytes, content_type: str | None) -> None:
    with pytest.raises(InvalidRequestError):
        parse_form(body, content_type)


def test_parameter_without_value_counts_as_omitted() -> None:
    assert parse_form(b"grant_type=password&scope=", FORM) == {"grant_type": "password"}


# --- client authentication (RFC 6749 §2.3) --------------------------------------


def basic(client_id: str, secret: str) -> str:
    raw = f"{quote_plus(client_id)}:{quote_plus(secret)}".encode()
    return "Basic " + base64.b64encode(raw).decode()


def test_basic_credentials_are_form_decoded() -> None:
    credentials = extract_client_credentials(
        TokenRequest(form={"grant_type": "x"}, authorization=basic("my client", "s3cr+t/="))
    )
    assert (credentials.client_id, credentials.client_secret) == ("my client", "s3cr+t/=")
    assert credentials.method == "client_secret_basic"


def test_basic_scheme_is_case_insensitive() -> None:
    header = basic("id", "secret").replace("Basic", "bAsIc")
    assert extract_client_credentials(TokenRequest(form={}, authorization=header)).client_id == "id"


def test_secret_in_body_beside_basic_is_invalid_request() -> None:
    request = TokenRequest(form={"client_secret": "s"}, authorization=basic("id", "secret"))
    with pytest.raises(InvalidRequestError):
        extract_client_credentials(request)


def test_matching_client_id_beside_basic_is_accepted() -> None:
    request = TokenRequest(form={"client_id": "id"}, authorization=basic("id", "secret"))
    assert extract_client_credentials(request).client_id == "id"


def test_mismatching_client_id_beside_basic_is_invalid_request() -> None:
    request = TokenRequest(form={"client_id": "other"}, authorization=basic("id", "secret"))
    with pytest.raises(InvalidRequestError):
        extract_client_credentials(request)


@pytest.mark.parametrize("header", ["Basic !!!", "Basic " + base64.b64encode(b"nocolon").decode()])
def test_malformed_basic_is_invalid_client_with_challenge(header: str) -> None:
    with pytest.raises(InvalidClientError) as caught:
        extract_client_credentials(TokenRequest(form={}, authorization=header))
    assert caught.value.headers["WWW-Authenticate"].startswith("Basic")


def test_post_credentials_and_public_clients() -> None:
    post = extract_client_credentials(TokenRequest(form={"client_id": "a", "client_secret": "b"}))
    assert post.method == "client_secret_post"
    public = extract_client_credentials(TokenRequest(form={"client_id": "a"}))
    assert (public.method, public.client_secret) == ("none", None)


def test_no_client_at_all_is_invalid_client_without_basic_challenge() -> None:
    with pytest.raises(InvalidClientError) as caught:
        extract_client_credentials(TokenRequest(form={"grant_type": "password"}))
    assert "WWW-Authenticate" not in caught.value.headers


def test_unknown_grant_type_is_unsupported() -> None:
    with pytest.raises(UnsupportedGrantTypeError):
        DEFAULT_GRANTS.create("implicit", context=None)  # type: ignore[arg-type]


# --- scopes and audience (RFC 6749 §3.3, RFC 8707) -------------------------------


def test_unknown_and_malformed_scopes_are_invalid_scope() -> None:
    with pytest.raises(InvalidScopeError):
        parse_requested_scope("read-posts delete-everything", REGISTRY)
    with pytest.raises(InvalidScopeError):
        parse_requested_scope('read-posts  "quoted"', REGISTRY)


def test_scope_the_client_may_not_have_is_refused_not_dropped() -> None:
    client = make_client(scopes=["read-posts"])
    with pytest.raises(InvalidScopeError):
        resolve_scopes(frozenset({"read-posts", "write-posts"}), client, None, REGISTRY)


def test_privileged_scope_needs_an_admin_user() -> None:
    client = make_client()
    with pytest.raises(InvalidScopeError):
        resolve_scopes(frozenset({"admin"}), client, make_user(admin=False), REGISTRY)
    assert resolve_scopes(frozenset({"admin"}), client, make_user(admin=True), REGISTRY) == {
        "admin"
    }


def test_privileged_scope_for_a_client_token_needs_the_client_allowed_it() -> None:
    assert resolve_scopes(frozenset({"admin"}), make_client(), None, REGISTRY) == {"admin"}
    with pytest.raises(InvalidScopeError):
        resolve_scopes(frozenset({"admin"}), make_client(scopes=["read-posts"]), None, REGISTRY)


def test_no_scope_means_default_scopes_the_principal_may_hold() -> None:
    client = make_client()
    assert resolve_scopes(None, client, make_user(admin=False), REGISTRY) == {"read-posts"}
    assert resolve_scopes(None, client, make_user(admin=True), REGISTRY) == {"read-posts", "admin"}


def test_audience_is_the_named_resource_or_the_default() -> None:
    client = make_client()
    assert resolve_audience(None, client) == "posts"
    assert resolve_audience("billing", client) == "billing"
    with pytest.raises(InvalidTargetError):
        resolve_audience("payroll", client)


# --- client IP and sealing -------------------------------------------------------

PROXIES = (ipaddress.ip_network("10.0.0.0/8"),)


def test_forwarded_for_is_ignored_from_an_untrusted_peer() -> None:
    assert client_ip("203.0.113.9", "198.51.100.1", PROXIES) == "203.0.113.9"


def test_forwarded_for_is_honoured_from_a_trusted_proxy() -> None:
    assert client_ip("10.0.0.2", "198.51.100.1", PROXIES) == "198.51.100.1"


def test_forwarded_for_takes_the_rightmost_untrusted_hop() -> None:
    # The client can prepend anything; only what the proxies appended counts.
    assert client_ip("10.0.0.2", "1.1.1.1, 198.51.100.1, 10.0.0.3", PROXIES) == "198.51.100.1"


def test_garbled_forwarded_for_falls_back_to_the_peer() -> None:
    assert client_ip("10.0.0.2", "not-an-ip", PROXIES) == "10.0.0.2"


def test_sealed_key_opens_only_under_the_same_secret_and_kid() -> None:
    sealer = KeySealer(b"k" * 16 + b"0123456789abcdef")
    sealed = sealer.seal(b"private pem", "kid-1")
    assert b"private pem" not in sealed
    assert sealer.unseal(sealed, "kid-1") == b"private pem"
    with pytest.raises(UnsealError):
        sealer.unseal(sealed, "kid-2")
    with pytest.raises(UnsealError):
        KeySealer(b"x" * 32).unseal(sealed, "kid-1")
