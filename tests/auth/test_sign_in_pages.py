"""The auth service's own pages: sign in, sign out, CSRF, cookies, framing."""

from __future__ import annotations

import re
from http.cookies import SimpleCookie

import httpx
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from portcullis_auth.http.app import create_app
from portcullis_auth.settings import AuthSettings
from tests.auth.conftest import USER_PASSWORD, Seed, auth_environ

Http = AsyncTestClient[Litestar]
EMAIL = "ada@example.com"


def csrf_of(page: httpx.Response) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert found is not None, page.text
    return found.group(1)


def set_cookie(response: httpx.Response, name: str) -> SimpleCookie:
    for header in response.headers.get_list("set-cookie"):
        if header.startswith(f"{name}="):
            jar: SimpleCookie = SimpleCookie()
            jar.load(header)
            return jar
    raise AssertionError(f"no {name} cookie set: {response.headers.get_list('set-cookie')}")


async def sign_in(http: Http, password: str = USER_PASSWORD, **extra: str) -> httpx.Response:
    page = await http.get("/sign-in")
    return await http.post(
        "/sign-in",
        data={"email": EMAIL, "password": password, "csrf_token": csrf_of(page), **extra},
        follow_redirects=False,
    )


async def test_a_user_signs_in_and_out(http: Http, seed: Seed) -> None:
    await seed.user(EMAIL)
    signed_in = await sign_in(http, next="/account/applications")
    assert signed_in.status_code == 303, signed_in.text
    assert signed_in.headers["location"] == "/account/applications"
    session = set_cookie(signed_in, "portcullis_session")["portcullis_session"]
    assert session["httponly"]
    assert session["samesite"].lower() == "lax"
    assert not session["secure"]  # the issuer here is plain http
    home = await http.get("/account/applications")
    assert home.status_code == 200
    assert EMAIL in home.text

    out = await http.post("/sign-out", data={"csrf_token": csrf_of(home)}, follow_redirects=False)
    assert out.status_code == 303
    assert (await http.get("/account/applications", follow_redirects=False)).status_code == 303


async def test_a_session_cookie_planted_before_sign_in_is_worth_nothing(
    http: Http, seed: Seed
) -> None:
    await seed.user(EMAIL)
    http.cookies.set("portcullis_session", "planted-by-someone-else")
    signed_in = await sign_in(http)
    fresh = set_cookie(signed_in, "portcullis_session")["portcullis_session"].value
    assert fresh != "planted-by-someone-else"
    assert len(fresh) >= 43


@pytest.mark.parametrize("csrf", [None, "forged", ""], ids=["missing", "forged", "empty"])
async def test_a_form_without_its_csrf_token_is_refused(
    http: Http, seed: Seed, csrf: str | None
) -> None:
    await seed.user(EMAIL)
    await http.get("/sign-in")  # the browser cookie is set; the token is not sent
    data = {"email": EMAIL, "password": USER_PASSWORD}
    if csrf is not None:
        data["csrf_token"] = csrf
    refused = await http.post("/sign-in", data=data, follow_redirects=False)
    assert refused.status_code == 403
    assert (
        "set-cookie" not in refused.headers
        or "portcullis_session" not in refused.headers["set-cookie"]
    )


async def test_another_browsers_csrf_token_does_not_pass(http: Http, seed: Seed) -> None:
    await seed.user(EMAIL)
    token = csrf_of(await http.get("/sign-in"))  # the attacker's own browser
    http.cookies.clear()  # now the victim's browser, with a cookie of its own
    await http.get("/sign-in")
    refused = await http.post(
        "/sign-in",
        data={"email": EMAIL, "password": USER_PASSWORD, "csrf_token": token},
        follow_redirects=False,
    )
    assert refused.status_code == 403


@pytest.mark.parametrize(
    "target", ["https://evil.example/", "//evil.example/", "/\\evil.example", "javascript:x"]
)
async def test_sign_in_never_sends_anyone_to_another_site(
    http: Http, seed: Seed, target: str
) -> None:
    await seed.user(EMAIL)
    signed_in = await sign_in(http, next=target)
    assert signed_in.headers["location"] == "/account/applications"


async def test_wrong_passwords_back_off_as_the_password_grant_does(
    http: Http, seed: Seed, settings: AuthSettings
) -> None:
    await seed.user(EMAIL)
    answers = [(await sign_in(http, password="guess")).status_code for _ in range(6)]
    assert answers == [400] * settings.login.max_failures + [429]
    right = await sign_in(http)
    assert right.status_code == 429  # the back-off holds for the right password too
    assert int(right.headers["retry-after"]) >= 1


async def test_pages_load_nothing_from_elsewhere_and_cannot_be_framed(http: Http) -> None:
    page = await http.get("/sign-in")
    csp = page.headers["content-security-policy"]
    assert "default-src 'none'" in csp
    assert "frame-ancestors 'none'" in csp
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["cache-control"] == "no-store"
    assert "<script" not in page.text
    assert re.findall(r'(?:href|src)="([^"]+)"', page.text) == ["/assets/portcullis.css"]
    style = await http.get("/assets/portcullis.css")
    assert style.status_code == 200
    assert style.headers["content-type"].startswith("text/css")


async def test_cookies_are_secure_when_the_issuer_is_https(
    database_url: str, redis_url: str, redis_prefix: str, seed: Seed
) -> None:
    await seed.user(EMAIL)
    environ = auth_environ(database_url, redis_url, redis_prefix)
    environ["PORTCULLIS_ISSUER"] = "https://auth.test"
    environ["PORTCULLIS_SECRET_KEY"] = seed.settings.secret_key.hex()
    app = create_app(AuthSettings.from_env(environ))
    async with AsyncTestClient(app=app, base_url="https://auth.test") as http:
        page = await http.get("/sign-in")
        signed_in = await http.post(
            "/sign-in",
            data={"email": EMAIL, "password": USER_PASSWORD, "csrf_token": csrf_of(page)},
            follow_redirects=False,
        )
    assert signed_in.status_code == 303
    assert set_cookie(page, "portcullis_browser")["portcullis_browser"]["secure"]
    assert set_cookie(signed_in, "portcullis_session")["portcullis_session"]["secure"]
