"""The consent page and the authorized-applications routes, in process: when consent is
asked, what a form must carry, and what a malformed client id gets."""

from __future__ import annotations

import asyncio
import uuid
from urllib.parse import parse_qs, quote, urlsplit

import httpx
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from portcullis_auth.oauth2.pkce import challenge_of
from portcullis_auth.services.authorization import AuthorizationService
from portcullis_auth.services.revocations import RevocationService
from portcullis_auth.settings import AuthSettings
from portcullis_shared.sql import create_engine, create_sessionmaker
from tests.auth.conftest import Seed
from tests.auth.helpers import (
    USER_EMAIL,
    assert_oauth_error,
    csrf_of,
    hidden_fields,
    password_grant,
    query,
    sign_in,
)

Http = AsyncTestClient[Litestar]
WEB_CALLBACK = "https://app.example/callback"
LOOPBACK_CALLBACK = "http://127.0.0.1/callback"


def authorization(client_id: str, redirect_uri: str, **changes: str) -> dict[str, str]:
    return {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "scope": "read-posts",
        "state": "s",
        "code_challenge": challenge_of("v" * 43),
        "code_challenge_method": "S256",
        **changes,
    }


async def authorize(http: Http, params: dict[str, str]) -> httpx.Response:
    return await http.get("/oauth/authorize", params=params, follow_redirects=False)


async def approve(http: Http, consent: httpx.Response) -> httpx.Response:
    """The consent page's form, sent with "Allow"."""
    assert consent.status_code == 200, consent.text
    return await http.post(
        "/oauth/authorize",
        data={**hidden_fields(consent), "decision": "approve"},
        follow_redirects=False,
    )


def code_in(answer: httpx.Response) -> str | None:
    assert answer.status_code == 303, answer.text
    return parse_qs(urlsplit(answer.headers["location"]).query).get("code", [None])[0]


def assert_framed_nowhere(page: httpx.Response) -> None:
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["content-type"].startswith("text/html")


# --- when consent is asked ---------------------------------------------------------------


async def test_a_parameter_given_twice_is_named_only_if_it_is_the_protocols(
    http: Http,
) -> None:
    """A secret pasted into the query as a name must not come back on the error page."""
    secret = "hunter2-" + "s3cr3t" * 4
    refused = await http.get(f"/oauth/authorize?{secret}=1&{secret}=2", follow_redirects=False)
    assert refused.status_code == 400, refused.text
    assert "twice" in refused.text
    assert secret not in refused.text
    known = await http.get("/oauth/authorize?state=1&state=2", follow_redirects=False)
    assert "state twice" in known.text


async def test_a_public_third_party_app_is_asked_about_every_time(http: Http, seed: Seed) -> None:
    """RFC 8252 §8.6, RFC 6749 §10.2: a public client's identity is not proven (any local
    program can take a loopback port), so a consent given before is no reason to hand a
    code to whoever asks in its name now."""
    await seed.user(USER_EMAIL)
    native, _ = await seed.client(
        name="Native app",
        grant_types=("authorization_code",),
        redirect_uris=(LOOPBACK_CALLBACK,),
        public=True,
    )
    assert (await sign_in(http)).status_code == 303
    params = authorization(native, "http://127.0.0.1:53177/callback")
    assert code_in(await approve(http, await authorize(http, params)))

    again = await authorize(http, params)
    assert again.status_code == 200, again.headers.get("location")
    assert "Native app" in again.text
    assert_framed_nowhere(again)


async def test_a_first_party_app_on_a_loopback_port_is_asked_too(http: Http, seed: Seed) -> None:
    """First-party or not, a public client answered on a loopback port could be any local
    program: only a confidential client or an https redirect proves who asks."""
    await seed.user(USER_EMAIL)
    ours, _ = await seed.client(
        name="Our CLI",
        grant_types=("authorization_code",),
        redirect_uris=(LOOPBACK_CALLBACK,),
        public=True,
        first_party=True,
    )
    web, _ = await seed.client(
        name="Our SPA",
        grant_types=("authorization_code",),
        redirect_uris=(WEB_CALLBACK,),
        public=True,
        first_party=True,
    )
    assert (await sign_in(http)).status_code == 303
    asked = await authorize(http, authorization(ours, "http://127.0.0.1:53177/callback"))
    assert asked.status_code == 200, asked.headers.get("location")
    assert "Our CLI" in asked.text
    assert code_in(await authorize(http, authorization(web, WEB_CALLBACK)))


async def test_a_confidential_third_party_app_is_not_asked_twice_for_the_same_scopes(
    http: Http, seed: Seed
) -> None:
    await seed.user(USER_EMAIL)
    web, _ = await seed.client(
        name="Web app", grant_types=("authorization_code",), redirect_uris=(WEB_CALLBACK,)
    )
    assert (await sign_in(http)).status_code == 303
    params = authorization(web, WEB_CALLBACK)
    assert code_in(await approve(http, await authorize(http, params)))
    assert code_in(await authorize(http, params))


# --- the consent form --------------------------------------------------------------------


@pytest.mark.parametrize("csrf", [None, "forged"], ids=["missing", "wrong"])
async def test_a_consent_without_its_csrf_token_is_refused_and_issues_no_code(
    http: Http, seed: Seed, csrf: str | None
) -> None:
    await seed.user(USER_EMAIL)
    web, _ = await seed.client(
        name="Web app", grant_types=("authorization_code",), redirect_uris=(WEB_CALLBACK,)
    )
    assert (await sign_in(http)).status_code == 303
    consent = await authorize(http, authorization(web, WEB_CALLBACK))
    form = {**hidden_fields(consent), "decision": "approve"}
    del form["csrf_token"]
    if csrf is not None:
        form["csrf_token"] = csrf
    refused = await http.post("/oauth/authorize", data=form, follow_redirects=False)
    assert refused.status_code == 403
    assert "location" not in refused.headers
    assert_framed_nowhere(refused)
    codes = await query(seed.settings, "SELECT count(*) AS n FROM authorization_codes")
    assert codes[0]["n"] == 0


async def test_concurrent_first_approvals_all_succeed_and_keep_every_scope(
    seed: Seed, settings: AuthSettings
) -> None:
    """Two tabs approving the same app at once: both first consents, neither fails, and the
    consent remembered holds the scopes of both."""
    user_id = uuid.UUID(await seed.user(USER_EMAIL))
    web, _ = await seed.client(
        name="Web app", grant_types=("authorization_code",), redirect_uris=(WEB_CALLBACK,)
    )
    engine = create_engine(settings.database.url)
    sessions = create_sessionmaker(engine)
    approvals = [frozenset({"read-posts"}), frozenset({"write-posts"})] * 4

    async def approve_in_own_transaction(scopes: frozenset[str]) -> None:
        async with sessions() as session:
            codes = AuthorizationService(session, RevocationService(session, settings.tokens))
            await codes.remember_consent(user_id, web, scopes)
            await session.commit()

    try:
        await asyncio.gather(*(approve_in_own_transaction(scopes) for scopes in approvals))
        async with sessions() as session:
            codes = AuthorizationService(session, RevocationService(session, settings.tokens))
            assert await codes.has_consent(user_id, web, frozenset({"read-posts", "write-posts"}))
    finally:
        await engine.dispose()


# --- authorized applications: a malformed client id ----------------------------------------

MALFORMED_CLIENT_IDS = ["\x00x", "client_\x07bell", "c" * 101]


@pytest.mark.parametrize("client_id", MALFORMED_CLIENT_IDS, ids=["nul", "control", "too-long"])
async def test_revoking_an_app_by_a_malformed_id_on_the_page_is_an_error_page(
    http: Http, seed: Seed, client_id: str
) -> None:
    await seed.user(USER_EMAIL)
    assert (await sign_in(http)).status_code == 303
    home = await http.get("/account/applications")
    refused = await http.post(
        f"/account/applications/{quote(client_id, safe='')}/revoke",
        data={"csrf_token": csrf_of(home)},
        follow_redirects=False,
    )
    assert refused.status_code == 400, refused.text
    assert_framed_nowhere(refused)


@pytest.mark.parametrize("client_id", MALFORMED_CLIENT_IDS, ids=["nul", "control", "too-long"])
async def test_revoking_an_app_by_a_malformed_id_through_the_api_is_400(
    http: Http, seed: Seed, client_id: str
) -> None:
    await seed.user(USER_EMAIL)
    own_app, secret = await seed.client(first_party=True)
    assert secret is not None
    login = await password_grant(http, own_app, secret, scope="read-posts")
    assert login.status_code == 200, login.text
    refused = await http.delete(
        f"/oauth/authorized-applications/{quote(client_id, safe='')}",
        headers={"Authorization": f"Bearer {login.json()['access_token']}"},
    )
    assert_oauth_error(refused, 400, "invalid_request")
