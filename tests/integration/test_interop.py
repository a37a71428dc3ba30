"""A standard OAuth2 client (Authlib) and a standard JWT library (PyJWT) against the real server.

Nothing here uses Portcullis code: tokens are fetched the way any third-party
client fetches them and verified the way any resource server verifies them,
against the JWKS the running service publishes.
"""

from __future__ import annotations

import uuid
from typing import Any

import jwt
import pytest
import requests
from authlib.integrations.requests_client import OAuth2Session, OAuthError

from tests.integration.conftest import USER_EMAIL, AuthServer
from tests.integration.processes import ClientCredentials

AUTH_METHODS = ("client_secret_basic", "client_secret_post")
AUDIENCE = "posts"
REQUIRED_CLAIMS = ["iss", "sub", "aud", "exp", "iat", "jti", "client_id", "scope", "sid"]


def oauth_session(
    client: ClientCredentials, method: str, scope: str | None = None
) -> OAuth2Session:
    return OAuth2Session(
        client_id=client.client_id,
        client_secret=client.client_secret,
        token_endpoint_auth_method=method,
        scope=scope,
    )


def verify_access_token(server: AuthServer, token: str) -> dict[str, Any]:
    """Verify as an independent resource server would: JWKS over HTTP, RS256, iss, aud."""
    header = jwt.get_unverified_header(token)
    assert header["typ"] == "at+jwt", header
    assert header["alg"] == "RS256", header
    assert header.get("kid"), header
    signing_key = jwt.PyJWKClient(server.jwks_url, cache_keys=False).get_signing_key_from_jwt(token)
    claims: dict[str, Any] = jwt.decode(
        token,
        signing_key.key,
        algorithms=["RS256"],
        audience=AUDIENCE,
        issuer=server.issuer,
        options={"require": REQUIRED_CLAIMS},
    )
    assert header["kid"] == server.install_output["signing_key"]
    return claims


def assert_bearer_response(token: dict[str, Any]) -> None:
    assert token["token_type"].lower() == "bearer"
    assert token["access_token"]
    assert isinstance(token["expires_in"], int)
    assert 0 < token["expires_in"] <= 900


def password_tokens(server: AuthServer, method: str) -> dict[str, Any]:
    with oauth_session(server.password_client, method) as session:
        token: dict[str, Any] = session.fetch_token(
            server.token_url, username=USER_EMAIL, password=server.user_password
        )
    return token


@pytest.mark.parametrize("method", AUTH_METHODS)
def test_password_grant(auth_server: AuthServer, method: str) -> None:
    token = password_tokens(auth_server, method)

    assert_bearer_response(token)
    assert token["refresh_token"]
    # No scope asked for: the password client's default (unprivileged) scopes.
    assert set(token["scope"].split()) == {"read-posts", "write-posts"}
    claims = verify_access_token(auth_server, token["access_token"])
    assert claims["sub"] == auth_server.user_id
    assert str(uuid.UUID(claims["sub"])) == claims["sub"]
    assert claims["client_id"] == auth_server.password_client.client_id
    assert claims["sub"] != claims["client_id"]
    assert set(claims["scope"].split()) == {"read-posts", "write-posts"}
    assert claims["exp"] - claims["iat"] == token["expires_in"]

    # A narrower scope, asked for explicitly.
    with oauth_session(auth_server.password_client, method, scope="read-posts") as session:
        token = session.fetch_token(
            auth_server.token_url, username=USER_EMAIL, password=auth_server.user_password
        )

    assert token["scope"] == "read-posts"
    assert verify_access_token(auth_server, token["access_token"])["scope"] == "read-posts"


@pytest.mark.parametrize("method", AUTH_METHODS)
def test_client_credentials_grant(auth_server: AuthServer, method: str) -> None:
    machine = auth_server.machine_client
    with oauth_session(machine, method, scope="read-posts") as session:
        token = session.fetch_token(auth_server.token_url, grant_type="client_credentials")

    assert_bearer_response(token)
    assert "refresh_token" not in token
    assert token["scope"] == "read-posts"
    claims = verify_access_token(auth_server, token["access_token"])
    # A token speaks for a client exactly when sub == client_id.
    assert claims["sub"] == machine.client_id
    assert claims["client_id"] == machine.client_id
    assert claims["scope"] == "read-posts"


@pytest.mark.parametrize("method", AUTH_METHODS)
def test_refresh_grant(auth_server: AuthServer, method: str) -> None:
    first = password_tokens(auth_server, method)
    first_claims = verify_access_token(auth_server, first["access_token"])

    with oauth_session(auth_server.password_client, method) as session:
        refreshed = session.refresh_token(
            auth_server.token_url, refresh_token=first["refresh_token"]
        )

        assert_bearer_response(refreshed)
        assert refreshed["refresh_token"]
        assert refreshed["refresh_token"] != first["refresh_token"]
        assert refreshed["access_token"] != first["access_token"]
        claims = verify_access_token(auth_server, refreshed["access_token"])
        assert claims["sub"] == auth_server.user_id
        assert claims["client_id"] == auth_server.password_client.client_id
        assert claims["sid"] == first_claims["sid"]
        assert claims["jti"] != first_claims["jti"]
        assert set(claims["scope"].split()) == {"read-posts", "write-posts"}

        # The rotated-out token, repeated within the grace window: refused, family kept.
        with pytest.raises(OAuthError) as repeated:
            session.refresh_token(auth_server.token_url, refresh_token=first["refresh_token"])
        assert repeated.value.error == "invalid_grant"

        again = session.refresh_token(
            auth_server.token_url, refresh_token=refreshed["refresh_token"]
        )
    again_claims = verify_access_token(auth_server, again["access_token"])
    assert again_claims["sid"] == first_claims["sid"]
    assert again["refresh_token"] not in {first["refresh_token"], refreshed["refresh_token"]}


def test_metadata_names_the_running_issuer(auth_server: AuthServer) -> None:
    response = requests.get(
        f"{auth_server.base_url}/.well-known/oauth-authorization-server", timeout=5
    )
    assert response.status_code == 200
    metadata = response.json()
    assert metadata["issuer"] == auth_server.issuer
    assert metadata["token_endpoint"] == auth_server.token_url
    assert metadata["jwks_uri"] == auth_server.jwks_url
    assert set(AUTH_METHODS) <= set(metadata["token_endpoint_auth_methods_supported"])

    jwks = requests.get(auth_server.jwks_url, timeout=5)
    assert jwks.status_code == 200
    keys = jwks.json()["keys"]
    assert [key["kid"] for key in keys] == [auth_server.install_output["signing_key"]]
    assert all("d" not in key for key in keys), "the JWKS publishes a private key"


def test_install_a_second_time_creates_nothing(auth_server: AuthServer) -> None:
    cli = auth_server.cli
    clients_before = cli.json("client", "list")
    keys_before = cli.run("keys", "list").stdout

    assert cli.json("install") == {}
    assert "already installed" in cli.run("install").stdout

    assert cli.json("client", "list") == clients_before
    assert cli.run("keys", "list").stdout == keys_before
    assert {client["name"] for client in clients_before} == {
        "Portcullis Password Grant Client",
        "Portcullis Personal Access Client",
        "Portcullis Playground",
        "machine",
    }
    # The server still issues with the original key and client.
    token = password_tokens(auth_server, "client_secret_basic")
    verify_access_token(auth_server, token["access_token"])


def test_server_output_never_contains_secrets(auth_server: AuthServer) -> None:
    issued: list[str] = []
    for method in AUTH_METHODS:
        token = password_tokens(auth_server, method)
        issued += [token["access_token"], token["refresh_token"]]
        with oauth_session(auth_server.password_client, method) as session:
            refreshed = session.refresh_token(
                auth_server.token_url, refresh_token=token["refresh_token"]
            )
        issued += [refreshed["access_token"], refreshed["refresh_token"]]
        with oauth_session(auth_server.machine_client, method, scope="read-posts") as session:
            issued.append(
                session.fetch_token(auth_server.token_url, grant_type="client_credentials")[
                    "access_token"
                ]
            )

    # Failures are where credentials tend to leak into logs.
    wrong_password = "wrong-password-that-must-not-be-logged"
    with (
        oauth_session(auth_server.password_client, "client_secret_post") as session,
        pytest.raises(OAuthError) as failed_login,
    ):
        session.fetch_token(auth_server.token_url, username=USER_EMAIL, password=wrong_password)
    assert failed_login.value.error == "invalid_grant"

    wrong_secret = "wrong-client-secret-that-must-not-be-logged"
    bad_client = ClientCredentials(auth_server.machine_client.client_id, wrong_secret)
    with (
        oauth_session(bad_client, "client_secret_basic", scope="read-posts") as session,
        pytest.raises(OAuthError) as failed_client,
    ):
        session.fetch_token(auth_server.token_url, grant_type="client_credentials")
    assert failed_client.value.error == "invalid_client"

    # A credential in a query string is refused; an access log would print it.
    queried_secret = "query-string-secret-that-must-not-be-logged"
    refused = requests.get(f"{auth_server.token_url}?client_secret={queried_secret}", timeout=10)
    assert refused.status_code == 405

    auth_server.stop()
    output = auth_server.output()
    # The capture works: the server did log the issuing (by token id, not value).
    assert "event=token_issued" in output, output

    secrets = [
        auth_server.user_password,
        wrong_password,
        wrong_secret,
        queried_secret,
        auth_server.password_client.client_secret,
        auth_server.machine_client.client_secret,
        auth_server.secret_key,
        *issued,
    ]
    assert len(issued) == 10
    assert auth_server.secrets_in_output(secrets) == [], output


def test_a_forged_forwarded_for_from_an_untrusted_peer_does_not_escape_the_throttle(
    auth_server: AuthServer,
) -> None:
    """The served process believes X-Forwarded-For only from a trusted proxy (none
    here): uvicorn's own proxy headers would have taken it from any local peer, and
    each forged address would have been a fresh throttle key."""
    answers = []
    for attempt in range(6):
        answer = requests.post(
            auth_server.token_url,
            auth=(auth_server.password_client.client_id, auth_server.password_client.client_secret),
            data={"grant_type": "password", "username": USER_EMAIL, "password": "wrong"},
            headers={"X-Forwarded-For": f"203.0.113.{attempt + 1}"},
            timeout=30,
        )
        answers.append(answer.status_code)
    assert answers == [400] * 5 + [429]
