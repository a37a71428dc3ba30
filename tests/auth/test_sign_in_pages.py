"""The auth service's own pages: sign in, sign out, CSRF, cookies, framing."""

from __future__ import annotations

import re
import secrets

import httpx
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from portcullis_auth.http.app import create_app
from portcullis_auth.settings import AuthSettings
from tests.auth.conftest import ISSUER, USER_PASSWORD, Seed, auth_environ
from tests.auth.helpers import csrf_of, set_cookie, sign_in

Http = AsyncTestClient[Litestar]
EMAIL = "ada@example.com"


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


@pytest.mark.parametrize(
    "csrf", [None, "forged", "", "é" * 64], ids=["missing", "forged", "empty", "not-ascii"]
)
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


async def test_cookies_are_host_only_and_secure_when_the_issuer_is_https(
    database_url: str, redis_url: str, redis_prefix: str, seed: Seed
) -> None:
    """The `__Host-` prefix: a browser keeps such a cookie only if it is Secure, for Path=/
    and with no Domain, so no sibling subdomain can set or shadow it (RFC 6265bis §4.1.3.2)."""
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
        home = await http.get("/account/applications", follow_redirects=False)
    assert signed_in.status_code == 303
    for response, name in ((page, "portcullis_browser"), (signed_in, "portcullis_session")):
        cookie = set_cookie(response, f"__Host-{name}")[f"__Host-{name}"]
        assert cookie["secure"]
        assert cookie["path"] == "/"
        assert not cookie["domain"]
    assert home.status_code == 200, home.text  # the prefixed cookies are the ones read


async def test_cookies_keep_plain_names_when_the_issuer_is_http(http: Http, seed: Seed) -> None:
    """A development issuer on plain http: a `__Host-` cookie would need Secure, which a
    browser sets only over https."""
    await seed.user(EMAIL)
    page = await http.get("/sign-in")
    signed_in = await sign_in(http)
    names = [
        header.split("=", 1)[0]
        for response in (page, signed_in)
        for header in response.headers.get_list("set-cookie")
    ]
    assert names == ["portcullis_browser", "portcullis_session"]


async def test_a_csrf_token_is_bound_to_the_session_it_was_shown_in(
    app: Litestar, seed: Seed
) -> None:
    """A browser cookie tossed into a victim's browser (from a sibling subdomain, say)
    brings no form token with it that passes beside the victim's own session."""
    await seed.user(EMAIL)
    async with AsyncTestClient(app=app, base_url=ISSUER) as attacker:
        tossed_browser = (await attacker.get("/sign-in")).cookies["portcullis_browser"]
        token_for_it = csrf_of(await attacker.get("/sign-in"))
    async with AsyncTestClient(app=app, base_url=ISSUER) as victim:
        assert (await sign_in(victim)).status_code == 303
        session = victim.cookies["portcullis_session"]
        victim.cookies.clear()
        cookies = f"portcullis_browser={tossed_browser}; portcullis_session={session}"
        forged = await victim.post(
            "/sign-out",
            data={"csrf_token": token_for_it},
            headers={"Cookie": cookies},
            follow_redirects=False,
        )
        still_in = await victim.get(
            "/account/applications", headers={"Cookie": cookies}, follow_redirects=False
        )
    assert forged.status_code == 403
    assert still_in.status_code == 200


async def test_a_form_shown_under_the_previous_secret_key_passes_only_while_it_is_set(
    database_url: str, redis_url: str, redis_prefix: str, seed: Seed
) -> None:
    """While the secret key rotates, a page shown by a process with the old key is sent
    to one with both: it passes there, and nowhere once the old key is gone."""
    await seed.user(EMAIL)
    old = seed.settings.secret_key.hex()
    new = secrets.token_hex(32)

    def app_with(**keys: str) -> Litestar:
        environ = auth_environ(database_url, redis_url, redis_prefix)
        environ.update(keys)
        return create_app(AuthSettings.from_env(environ))

    async def sign_in_with(app: Litestar, page: httpx.Response) -> int:
        async with AsyncTestClient(app=app, base_url=ISSUER) as http:
            http.cookies.set("portcullis_browser", page.cookies["portcullis_browser"])
            answer = await http.post(
                "/sign-in",
                data={"email": EMAIL, "password": USER_PASSWORD, "csrf_token": csrf_of(page)},
                follow_redirects=False,
            )
            return answer.status_code

    async with AsyncTestClient(app=app_with(PORTCULLIS_SECRET_KEY=old), base_url=ISSUER) as http:
        page = await http.get("/sign-in")
    both = app_with(PORTCULLIS_SECRET_KEY=new, PORTCULLIS_SECRET_KEY_PREVIOUS=old)
    assert await sign_in_with(both, page) == 303
    assert await sign_in_with(app_with(PORTCULLIS_SECRET_KEY=new), page) == 403
