"""What a browser holds for the auth service's pages: a session cookie and a CSRF token.

Both cookies are HttpOnly, SameSite=Lax, and Secure whenever the issuer is
https. Every form carries a CSRF token: an HMAC of the browser's own random
cookie under the service's secret, which a page of another site can neither
read nor make; the sign-in form has one too, so no site can sign a browser in
to an account of its choosing.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Any

from litestar import Request, Response
from litestar.datastructures import Cookie

from portcullis_auth.oauth2.errors import InvalidRequestError
from portcullis_auth.oauth2.request import FORM_CONTENT_TYPE, parse_form
from portcullis_auth.runtime import AuthRuntime

SESSION_COOKIE = "portcullis_session"
BROWSER_COOKIE = "portcullis_browser"
MAX_FORM_BYTES = 16 * 1024

PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self'; base-uri 'none'; "
        "frame-ancestors 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
"""Every page: nothing from another host, no script, never framed, never cached."""


class PageError(Exception):
    """A request a page refuses; shown as an error page with `status`."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def secure_cookies(runtime: AuthRuntime) -> bool:
    return runtime.settings.tokens.issuer.startswith("https://")


def cookie(runtime: AuthRuntime, name: str, value: str, max_age: int | None = None) -> Cookie:
    return Cookie(
        key=name,
        value=value,
        path="/",
        max_age=max_age,
        httponly=True,
        samesite="lax",
        secure=secure_cookies(runtime),
    )


def expired_cookie(runtime: AuthRuntime, name: str) -> Cookie:
    return Cookie(
        key=name,
        value="",
        path="/",
        max_age=0,
        httponly=True,
        samesite="lax",
        secure=secure_cookies(runtime),
    )


def browser_id(request: Request[Any, Any, Any]) -> str | None:
    value = request.cookies.get(BROWSER_COOKIE)
    return value if value and len(value) <= 100 else None


def csrf_token(runtime: AuthRuntime, browser: str) -> str:
    return hmac.new(
        runtime.settings.secret_key, b"csrf\x00" + browser.encode(), hashlib.sha256
    ).hexdigest()


def with_browser(
    runtime: AuthRuntime, request: Request[Any, Any, Any], response: Response[Any]
) -> Response[Any]:
    """`response`, with the browser cookie set if the browser had none."""
    if browser_id(request) is None:
        response.set_cookie(cookie(runtime, BROWSER_COOKIE, page_browser(request)))
    return response


def page_browser(request: Request[Any, Any, Any]) -> str:
    """The browser's id: its cookie, or a new one (remembered on this request so a page
    and its form agree)."""
    known = browser_id(request)
    if known is not None:
        return known
    fresh: str | None = getattr(request.state, "portcullis_browser", None)
    if fresh is None:
        fresh = secrets.token_urlsafe(32)
        request.state.portcullis_browser = fresh
    return fresh


async def read_form(runtime: AuthRuntime, request: Request[Any, Any, Any]) -> dict[str, str]:
    """A page's form, its CSRF token checked. Anything else is a `PageError`."""
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise PageError("The form is too large.", 413)
    try:
        form = parse_form(body, request.headers.get("content-type") or FORM_CONTENT_TYPE)
    except InvalidRequestError as exc:
        raise PageError(f"The form could not be read: {exc.description}.") from None
    browser = browser_id(request)
    sent = form.get("csrf_token", "")
    if browser is None or not hmac.compare_digest(sent, csrf_token(runtime, browser)):
        raise PageError(
            "This form has expired or did not come from this site. Go back, reload the "
            "page and try again.",
            403,
        )
    return form
