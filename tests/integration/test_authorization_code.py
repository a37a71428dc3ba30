"""Third-party apps between real processes: the authorization code flow through the auth
service's own sign-in and consent pages, the device flow, and authorized applications.

The client side is a standard library (Authlib), as an external API consumer's
would be; the user's side is a browser following the pages' forms.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session

from tests.integration.pages import PageBrowser
from tests.integration.processes import ClientCredentials
from tests.integration.stack import READ, WRITE, Stack
from tests.integration.test_revocation import assert_refused, refused_within

PARTNER_CALLBACK = "https://partner.example/callback"
ADA, BOB = "ada@example.com", "bob@example.com"
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"


@pytest.fixture(scope="module")
def auth_settings() -> dict[str, str]:
    return {"PORTCULLIS_DEVICE_POLL_INTERVAL": "1"}


@pytest.fixture(scope="module")
def partner(stack: Stack) -> ClientCredentials:
    """A third-party web app: confidential, asks for consent."""
    created = stack.cli.json(
        "client", "create", "Partner app",
        "--grant", "authorization_code", "--grant", "refresh_token",
        "--redirect-uri", PARTNER_CALLBACK,
        "--scope", READ, "--scope", WRITE, "--default-scope", READ,
    )  # fmt: skip
    return ClientCredentials(created["client_id"], created["client_secret"])


@pytest.fixture(scope="module")
def native_app(stack: Stack) -> str:
    """A third-party native app: public, on a loopback redirect."""
    created = stack.cli.json(
        "client", "create", "Native app", "--public",
        "--grant", "authorization_code", "--redirect-uri", "http://127.0.0.1/callback",
        "--scope", READ,
    )  # fmt: skip
    return str(created["client_id"])


@pytest.fixture(scope="module")
def tv(stack: Stack) -> str:
    """A device with no browser: public, the device grant."""
    created = stack.cli.json(
        "client", "create", "TV app", "--public",
        "--grant", "device_code", "--grant", "refresh_token", "--scope", READ,
    )  # fmt: skip
    return str(created["client_id"])


def oauth_session(stack: Stack, client: ClientCredentials, **options: Any) -> OAuth2Session:
    return OAuth2Session(
        client.client_id,
        client.client_secret,
        redirect_uri=PARTNER_CALLBACK,
        code_challenge_method="S256",
        **options,
    )


def signed_in_browser(stack: Stack, email: str) -> PageBrowser:
    browser = PageBrowser(stack.auth_url)
    browser.get("/sign-in")
    answer = browser.sign_in(email, stack.passwords[email])
    assert answer.status_code == 200, answer.text  # landed on the applications page
    return browser


def answer_of(response: requests.Response) -> dict[str, str]:
    """The query of the answer sent to the client's redirect URI."""
    assert response.status_code == 303, response.text
    location = response.headers["location"]
    return {name: values[0] for name, values in parse_qs(urlsplit(location).query).items()}


def authorize(stack: Stack, browser: PageBrowser, **params: str) -> requests.Response:
    return browser.get(f"{stack.auth_url}/oauth/authorize?{urlencode(params)}")


# --- the code flow ------------------------------------------------------------------------


def test_a_standard_client_gets_tokens_through_sign_in_and_consent(
    stack: Stack, partner: ClientCredentials
) -> None:
    oauth = oauth_session(stack, partner, scope=f"{READ} {WRITE}")
    verifier = generate_token(48)
    url, state = oauth.create_authorization_url(
        f"{stack.auth_url}/oauth/authorize", code_verifier=verifier
    )
    browser = PageBrowser(stack.auth_url)
    sign_in_page = browser.get(url)
    assert urlsplit(sign_in_page.url).path == "/sign-in"
    consent = browser.sign_in(ADA, stack.passwords[ADA])
    assert consent.status_code == 200, consent.text
    assert "Partner app" in consent.text
    assert "write-posts" in consent.text
    assert consent.headers["content-security-policy"].startswith("default-src 'none'")

    approved = browser.submit(browser.form(), button=("decision", "approve"))
    answer = answer_of(approved)
    assert approved.headers["location"].startswith(PARTNER_CALLBACK + "?")
    assert answer["state"] == state
    assert answer["iss"] == stack.auth_url

    token = oauth.fetch_token(
        f"{stack.auth_url}/oauth/token",
        authorization_response=approved.headers["location"],
        code_verifier=verifier,
    )
    assert set(token["scope"].split()) == {READ, WRITE}
    assert token["refresh_token"]
    assert stack.posts_call("GET", "/api/posts", token["access_token"]).status_code == 200
    me = stack.posts_call("GET", "/api/me", token["access_token"]).json()
    assert me["client_id"] == partner.client_id
    assert me["is_client"] is False

    refreshed = oauth.refresh_token(f"{stack.auth_url}/oauth/token")
    assert refreshed["access_token"] != token["access_token"]


def test_a_consent_given_is_remembered_and_a_denial_goes_back_to_the_client(
    stack: Stack, partner: ClientCredentials
) -> None:
    browser = signed_in_browser(stack, BOB)
    challenge = {"code_challenge": "x" * 43, "code_challenge_method": "S256"}
    request = {
        "response_type": "code",
        "client_id": partner.client_id,
        "redirect_uri": PARTNER_CALLBACK,
        "scope": READ,
        **challenge,
    }
    consent = authorize(stack, browser, state="first", **request)
    assert consent.status_code == 200
    denied = answer_of(browser.submit(browser.form(), button=("decision", "deny")))
    assert denied == {
        "error": "access_denied",
        "error_description": "the user denied the request",
        "state": "first",
        "iss": stack.auth_url,
    }
    authorize(stack, browser, state="second", **request)
    approved = answer_of(browser.submit(browser.form(), button=("decision", "approve")))
    assert approved["state"] == "second"
    # Asked again for the same scopes: answered at once, no page.
    again = answer_of(authorize(stack, browser, state="third", **request))
    assert again["code"]
    assert again["state"] == "third"
    # Asked for more: the consent page again.
    wider = authorize(stack, browser, state="fourth", **{**request, "scope": f"{READ} {WRITE}"})
    assert wider.status_code == 200
    assert "write-posts" in wider.text


def test_a_code_used_twice_fails_and_ends_what_it_issued(
    stack: Stack, partner: ClientCredentials
) -> None:
    oauth = oauth_session(stack, partner, scope=READ)
    verifier = generate_token(48)
    url, _ = oauth.create_authorization_url(
        f"{stack.auth_url}/oauth/authorize", code_verifier=verifier
    )
    browser = signed_in_browser(stack, BOB)
    location = browser.get(url).headers["location"]  # bob consented to read-posts before
    code = answer_of(browser.last)["code"]  # type: ignore[arg-type]
    first = oauth.fetch_token(
        f"{stack.auth_url}/oauth/token", authorization_response=location, code_verifier=verifier
    )
    assert stack.posts_call("GET", "/api/posts", first["access_token"]).status_code == 200

    second = requests.post(
        f"{stack.auth_url}/oauth/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": PARTNER_CALLBACK,
            "code_verifier": verifier,
        },
        auth=(partner.client_id, partner.client_secret),
        timeout=10,
    )
    reused_at = time.monotonic()
    assert second.status_code == 400, second.text
    assert second.json()["error"] == "invalid_grant"
    refused_within(stack, [first["access_token"]], reused_at, "authorization code reuse")
    refresh = requests.post(
        f"{stack.auth_url}/oauth/token",
        data={"grant_type": "refresh_token", "refresh_token": first["refresh_token"]},
        auth=(partner.client_id, partner.client_secret),
        timeout=10,
    )
    assert refresh.json()["error"] == "invalid_grant"


@pytest.mark.parametrize(
    ("challenge", "method"),
    [(None, None), ("x" * 43, "plain"), ("x" * 43, None)],
    ids=["no-challenge", "plain", "no-method"],
)
def test_pkce_s256_is_required_of_every_client(
    stack: Stack, partner: ClientCredentials, challenge: str | None, method: str | None
) -> None:
    browser = signed_in_browser(stack, ADA)
    params = {
        "response_type": "code",
        "client_id": partner.client_id,
        "redirect_uri": PARTNER_CALLBACK,
        "state": "s",
    }
    if challenge is not None:
        params["code_challenge"] = challenge
    if method is not None:
        params["code_challenge_method"] = method
    answer = answer_of(authorize(stack, browser, **params))
    assert answer["error"] == "invalid_request"
    assert answer["state"] == "s"
    assert "code" not in answer


@pytest.mark.parametrize(
    "redirect_uri",
    ["https://partner.example/callback/evil", "https://evil.example/callback", None],
)
def test_an_unregistered_redirect_uri_is_an_error_page_never_a_redirect(
    stack: Stack, partner: ClientCredentials, redirect_uri: str | None
) -> None:
    browser = signed_in_browser(stack, ADA)
    params = {
        "response_type": "code",
        "client_id": partner.client_id,
        "code_challenge": "x" * 43,
        "code_challenge_method": "S256",
    }
    if redirect_uri is not None:
        params["redirect_uri"] = redirect_uri
    page = authorize(stack, browser, **params)
    assert page.status_code == 400
    assert "location" not in page.headers
    assert page.headers["content-type"].startswith("text/html")
    unknown = authorize(stack, browser, **{**params, "client_id": "client_unknown"})
    assert unknown.status_code == 400
    assert "location" not in unknown.headers


def test_a_public_native_app_uses_any_loopback_port(stack: Stack, native_app: str) -> None:
    oauth = OAuth2Session(
        native_app,
        redirect_uri="http://127.0.0.1:53177/callback",
        code_challenge_method="S256",
        scope=READ,
        token_endpoint_auth_method="none",
    )
    verifier = generate_token(48)
    url, _ = oauth.create_authorization_url(
        f"{stack.auth_url}/oauth/authorize", code_verifier=verifier
    )
    browser = signed_in_browser(stack, ADA)
    consent = browser.get(url)
    approved = browser.submit(browser.form(), button=("decision", "approve"))
    assert consent.status_code == 200
    location = approved.headers["location"]
    assert location.startswith("http://127.0.0.1:53177/callback?")
    token = oauth.fetch_token(
        f"{stack.auth_url}/oauth/token", authorization_response=location, code_verifier=verifier
    )
    assert "refresh_token" not in token  # the app was not given the refresh grant
    assert stack.posts_call("GET", "/api/posts", token["access_token"]).status_code == 200


def test_the_server_metadata_names_the_new_endpoints(stack: Stack) -> None:
    metadata = requests.get(
        f"{stack.auth_url}/.well-known/oauth-authorization-server", timeout=10
    ).json()
    assert metadata["authorization_endpoint"] == f"{stack.auth_url}/oauth/authorize"
    assert metadata["device_authorization_endpoint"] == f"{stack.auth_url}/oauth/device/code"
    assert metadata["response_types_supported"] == ["code"]
    assert metadata["code_challenge_methods_supported"] == ["S256"]
    assert metadata["authorization_response_iss_parameter_supported"] is True
    assert {"authorization_code", DEVICE_GRANT} <= set(metadata["grant_types_supported"])


# --- the device flow -----------------------------------------------------------------------


def device_token(stack: Stack, client_id: str, device_code: str) -> requests.Response:
    return requests.post(
        f"{stack.auth_url}/oauth/token",
        data={"grant_type": DEVICE_GRANT, "device_code": device_code, "client_id": client_id},
        timeout=10,
    )


def start_device(stack: Stack, client_id: str) -> dict[str, Any]:
    started = requests.post(
        f"{stack.auth_url}/oauth/device/code",
        data={"client_id": client_id, "scope": READ},
        timeout=10,
    )
    assert started.status_code == 200, started.text
    assert started.headers["cache-control"] == "no-store"
    return dict(started.json())


def test_a_device_is_approved_on_another_device_and_gets_tokens_once(stack: Stack, tv: str) -> None:
    started = start_device(stack, tv)
    assert started["verification_uri"] == f"{stack.auth_url}/oauth/device"
    assert started["interval"] == 1
    assert len(started["user_code"].replace("-", "")) == 8
    pending = device_token(stack, tv, started["device_code"])
    assert pending.json()["error"] == "authorization_pending"

    browser = signed_in_browser(stack, ADA)
    entry = browser.get(started["verification_uri_complete"])
    assert entry.status_code == 200
    assert browser.form().fields["user_code"] == started["user_code"]  # filled in
    confirm = browser.submit(browser.form())
    assert "TV app" in confirm.text
    assert READ in confirm.text
    done = browser.submit(browser.form(), button=("decision", "approve"))
    assert done.status_code == 200

    time.sleep(started["interval"])  # RFC 8628 §3.5: a device waits the interval between polls
    issued = device_token(stack, tv, started["device_code"])
    assert issued.status_code == 200, issued.text
    assert stack.posts_call("GET", "/api/posts", issued.json()["access_token"]).status_code == 200
    again = device_token(stack, tv, started["device_code"])
    assert again.json()["error"] == "invalid_grant"


def test_a_device_polling_too_fast_slows_down_and_a_denial_is_access_denied(
    stack: Stack, tv: str
) -> None:
    started = start_device(stack, tv)
    assert device_token(stack, tv, started["device_code"]).json()["error"] == (
        "authorization_pending"
    )
    assert device_token(stack, tv, started["device_code"]).json()["error"] == "slow_down"
    browser = signed_in_browser(stack, BOB)
    browser.get(started["verification_uri_complete"])
    browser.submit(browser.form())
    browser.submit(browser.form(), button=("decision", "deny"))
    time.sleep(started["interval"] + 5)  # the interval grew by 5 s with the slow_down
    assert device_token(stack, tv, started["device_code"]).json()["error"] == "access_denied"


def test_wrong_user_codes_are_limited_per_session_and_address(stack: Stack, tv: str) -> None:
    browser = signed_in_browser(stack, BOB)
    browser.get("/oauth/device")
    form = browser.form()
    answers = [
        browser.submit(form, user_code=f"BCDF-GHJ{letter}").status_code for letter in "BCDFGH"
    ]
    assert answers[:5] == [400] * 5
    assert answers[5] == 429
    assert "retry-after" in browser.last.headers  # type: ignore[union-attr]


# --- authorized applications ------------------------------------------------------------------


def test_a_user_lists_the_apps_let_in_and_revokes_one(
    stack: Stack, partner: ClientCredentials
) -> None:
    oauth = oauth_session(stack, partner, scope=READ)
    verifier = generate_token(48)
    url, _ = oauth.create_authorization_url(
        f"{stack.auth_url}/oauth/authorize", code_verifier=verifier
    )
    browser = signed_in_browser(stack, ADA)
    page = browser.get(url)
    answer = (
        browser.submit(browser.form(), button=("decision", "approve"))
        if page.status_code == 200
        else page
    )
    app_token = oauth.fetch_token(
        f"{stack.auth_url}/oauth/token",
        authorization_response=answer.headers["location"],
        code_verifier=verifier,
    )

    own = stack.token(ADA, READ)["access_token"]
    bearer = {"Authorization": f"Bearer {own}"}
    listed = requests.get(
        f"{stack.auth_url}/oauth/authorized-applications", headers=bearer, timeout=10
    )
    assert listed.status_code == 200, listed.text
    apps = {app["client_id"]: app for app in listed.json()}
    assert apps[partner.client_id]["name"] == "Partner app"
    assert READ in apps[partner.client_id]["scopes"]
    assert apps[partner.client_id]["last_used_at"] is not None

    apps_page = browser.get("/account/applications")
    assert "Partner app" in apps_page.text

    revoked = requests.delete(
        f"{stack.auth_url}/oauth/authorized-applications/{partner.client_id}",
        headers=bearer,
        timeout=10,
    )
    revoked_at = time.monotonic()
    assert revoked.status_code == 204, revoked.text
    refused_within(stack, [app_token["access_token"]], revoked_at, "application revoked")
    assert_refused(stack.posts_call("GET", "/api/posts", app_token["access_token"]))
    listed_again = requests.get(
        f"{stack.auth_url}/oauth/authorized-applications", headers=bearer, timeout=10
    )
    assert partner.client_id not in {app["client_id"] for app in listed_again.json()}
    # The consent went with it: the app must ask again.
    assert browser.get(url).status_code == 200
