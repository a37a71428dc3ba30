"""The token playground in a real headless Chromium, against `portcullis dev`.

Clicks through: get a token, list posts, create a post, revoke the token,
and sees the next call refused; then a personal access token is created and
revoked. The stack is the embedded default exactly as `make dev` runs it.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from playwright.sync_api import Browser, Page, Route, expect, sync_playwright

from tests.integration.processes import Cli, ServiceProcess, executable, free_port

DevStack = tuple[str, dict[str, str], str]

CHROMIUM_FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str:
    path = os.environ.get("PORTCULLIS_TEST_CHROMIUM") or shutil.which("chromium")
    if path is None:
        raise RuntimeError(
            "the browser test needs Chromium: install Debian's `chromium` package or set "
            "PORTCULLIS_TEST_CHROMIUM to a Chromium binary"
        )
    return path


@pytest.fixture(scope="module")
def dev_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevStack]:
    """`portcullis dev` on free ports with its own data folder; (posts URL, dev state, auth URL)."""
    workdir = tmp_path_factory.mktemp("dev")
    auth_port, posts_port = free_port(), free_port()
    environ = {k: v for k, v in os.environ.items() if not k.startswith("PORTCULLIS_")}
    process = ServiceProcess(
        [
            executable("portcullis"),
            "dev",
            "--port",
            str(auth_port),
            "--posts-port",
            str(posts_port),
            "--data",
            "data",
        ],
        base_url=f"http://127.0.0.1:{posts_port}",
        environ=environ,
        cwd=workdir,
        log_path=workdir / "dev.log",
    )
    process.start()
    try:
        state = json.loads((workdir / "data" / "dev.json").read_text())
        state["folder"] = str(workdir / "data")
        yield f"http://127.0.0.1:{posts_port}", state, f"http://127.0.0.1:{auth_port}"
    finally:
        process.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_FLAGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: Browser, dev_stack: DevStack) -> Iterator[Page]:
    context = browser.new_context()
    opened = context.new_page()
    opened.goto(f"{dev_stack[0]}/playground/")
    try:
        yield opened
    finally:
        context.close()


def log_in(page: Page, state: dict[str, str]) -> None:
    page.fill("#username", "demo@example.com")
    page.fill("#password", state["demo_password"])
    page.click("#get-token")
    expect(page.locator("#api-status")).to_contain_text("POST /api/oauth/password/token: 200")
    expect(page.locator("#decoded-token")).to_contain_text('"typ": "at+jwt"')


def test_get_token_list_create_revoke_and_be_refused(page: Page, dev_stack: DevStack) -> None:
    log_in(page, dev_stack[1])
    assert "client_secret" not in page.content()

    page.click("#list-posts")
    expect(page.locator("#api-status")).to_contain_text("GET /api/posts: 200")

    page.fill("#post-title", "Written in a browser")
    page.click("#create-post")
    expect(page.locator("#api-status")).to_contain_text("POST /api/posts: 201")
    expect(page.locator("#api-response")).to_contain_text("Written in a browser")

    page.click("#revoke")
    expect(page.locator("#api-status")).to_contain_text("POST /api/oauth/revoke: 200")

    page.click("#list-posts")
    expect(page.locator("#api-status")).to_contain_text("GET /api/posts: 401")
    expect(page.locator("#api-response")).to_contain_text("invalid_token")


def test_personal_access_token_created_and_revoked(page: Page, dev_stack: DevStack) -> None:
    log_in(page, dev_stack[1])
    page.click("#create-pat")
    expect(page.locator("#api-status")).to_contain_text("POST personal access token: 201")
    expect(page.locator("#api-response")).to_contain_text('"access_token"')
    page.click("#revoke-pat")
    expect(page.locator("#api-status")).to_contain_text("DELETE personal access token: 204")


def test_playground_page_forbids_other_origins_and_framing(page: Page, dev_stack: DevStack) -> None:
    response = page.request.get(f"{dev_stack[0]}/playground/")
    assert (
        response.headers["content-security-policy"] == "default-src 'self'; frame-ancestors 'none'"
    )
    # Tokens stay in memory: nothing in storage or cookies after a login.
    log_in(page, dev_stack[1])
    assert page.evaluate("() => window.localStorage.length + window.sessionStorage.length") == 0
    assert page.context.cookies() == []


def test_screenshot_of_the_playground(page: Page, dev_stack: DevStack, tmp_path: Path) -> None:
    log_in(page, dev_stack[1])
    shot = Path(os.environ.get("PORTCULLIS_TEST_SCREENSHOT_DIR", tmp_path)) / "playground.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000


def test_the_dev_stack_believes_no_forwarding_header(dev_stack: DevStack) -> None:
    """Every local caller reaches `portcullis dev` from 127.0.0.1: were that address a
    trusted proxy, rotating X-Forwarded-For would dodge the password throttle."""
    _, state, auth_url = dev_stack
    client = (state["password_client_id"], state["password_client_secret"])

    def guess(forwarded_for: str) -> requests.Response:
        return requests.post(
            f"{auth_url}/oauth/token",
            data={"grant_type": "password", "username": "someone@example.com", "password": "x"},
            auth=client,
            headers={"X-Forwarded-For": forwarded_for},
            timeout=30,
        )

    assert [guess(f"203.0.113.{n}").status_code for n in range(5)] == [400] * 5
    refused = guess("203.0.113.99")
    assert refused.status_code == 429, refused.text


def test_sign_in_with_portcullis_runs_the_code_flow_from_the_page(
    page: Page, dev_stack: DevStack
) -> None:
    """The playground's public client, PKCE from the browser, the auth service's own
    sign-in page; on a loopback address its identity is not proven, so even this
    first-party client is asked."""
    _, state, auth_url = dev_stack
    page.click("#sign-in-portcullis")
    page.wait_for_url(f"{auth_url}/sign-in?*")
    page.fill("#email", "demo@example.com")
    page.fill("#password", state["demo_password"])
    page.click("button[type=submit]")
    page.wait_for_url(f"{auth_url}/oauth/authorize?*")
    page.click("button[value=approve]")
    expect(page.locator("#api-status")).to_contain_text("POST /api/oauth/code/token: 200")
    expect(page.locator("#decoded-token")).to_contain_text(state["playground_client_id"])
    assert "code=" not in page.url  # the code left the address bar
    assert page.evaluate("() => window.localStorage.length + window.sessionStorage.length") == 0
    page.click("#list-posts")
    expect(page.locator("#api-status")).to_contain_text("GET /api/posts: 200")
    page.click("#refresh")
    expect(page.locator("#api-status")).to_contain_text("POST /api/oauth/code/refresh: 200")


def test_a_third_party_app_is_signed_in_to_and_consented_in_a_browser(
    browser: Browser, dev_stack: DevStack, tmp_path: Path
) -> None:
    """Sign-in and consent pages in a real browser, without JavaScript: the answer goes
    to the app's redirect URI with the code, the state and the issuer."""
    posts_url, state, auth_url = dev_stack
    created = dev_cli(dev_stack, tmp_path).json(
        "client", "create", "Partner app",
        "--grant", "authorization_code", "--redirect-uri", "https://partner.example/cb",
        "--scope", "read-posts",
    )  # fmt: skip
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    answers: list[str] = []

    def partner(route: Route) -> None:
        answers.append(route.request.url)
        route.fulfill(status=200, body="partner app")

    page.route("https://partner.example/**", partner)
    try:
        page.goto(
            f"{auth_url}/oauth/authorize?response_type=code&client_id={created['client_id']}"
            "&redirect_uri=https%3A%2F%2Fpartner.example%2Fcb&scope=read-posts&state=xyz%20123"
            f"&code_challenge={'x' * 43}&code_challenge_method=S256"
        )
        page.fill("#email", "demo@example.com")
        page.fill("#password", state["demo_password"])
        page.click("button[type=submit]")
        expect(page.locator("h1")).to_contain_text("Allow Partner app?")
        expect(page.locator(".scopes")).to_contain_text("read-posts")
        page.click("#decision-approve")
        page.wait_for_url("https://partner.example/**")
    finally:
        context.close()
    (answer,) = answers
    query = parse_qs(urlsplit(answer).query)
    assert query["state"] == ["xyz 123"]
    assert query["iss"] == [auth_url]
    assert query["code"]
    assert posts_url  # the same stack


def dev_cli(dev_stack: DevStack, workdir: Path) -> Cli:
    """`portcullis` on the dev stack's database and secret."""
    _, state, auth_url = dev_stack
    environ = {
        **{k: v for k, v in os.environ.items() if not k.startswith("PORTCULLIS_")},
        "PORTCULLIS_DATABASE_URL": f"sqlite+aiosqlite:///{state['folder']}/auth.db",
        "PORTCULLIS_SECRET_KEY": state["secret_key"],
        "PORTCULLIS_ISSUER": auth_url,
    }
    return Cli(environ, workdir)
