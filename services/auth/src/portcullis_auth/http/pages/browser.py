"""What a browser holds for the auth service's pages: a session cookie and a CSRF token.

Both cookies are HttpOnly, SameSite=Lax, and Secure whenever the issuer is
https; then they are also named with the `__Host-` prefix, which a browser
keeps only for a Secure cookie of Path=/ with no Domain, so a sibling subdomain
can neither set nor shadow them (cookie tossing). Every form carries a CSRF
token: an HMAC, under the service's secret, of the browser's own random cookie
and of its session cookie, which a page of another site can neither read nor
make. The sign-in form has one too, so no site can sign a browser in to an
account of its choosing; and a browser cookie planted from elsewhere brings no
token that passes beside the victim's own session.
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
HOST_ONLY_PREFIX = "__Host-"
MAX_COOKIE_LENGTH = 100
"""Longer values were never set by us: read as no cookie."""
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

    def __init__(
        self, message: str, status: int = 400, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.headers = headers or {}


def secure_cookies(runtime: AuthRuntime) -> bool:
    return runtime.settings.tokens.issuer.startswith("https://")


def cookie_name(runtime: AuthRuntime, name: str) -> str:
    """`name` as set and read: `__Host-` prefixed under an https issuer (a plain http
    issuer, for development, cannot set the Secure flag the prefix needs)."""
    return HOST_ONLY_PREFIX + name if secure_cookies(runtime) else name


def cookie(runtime: AuthRuntime, name: str, value: str, max_age: int | None = None) -> Cookie:
    return Cookie(
        key=cookie_name(runtime, name),
        value=value,
        path="/",
        max_age=max_age,
        httponly=True,
        samesite="lax",
        secure=secure_cookies(runtime),
    )


def expired_cookie(runtime: AuthRuntime, name: str) -> Cookie:
    return cookie(runtime, name, "", max_age=0)


def read_cookie(runtime: AuthRuntime, request: Request[Any, Any, Any], name: str) -> str | None:
    value = request.cookies.get(cookie_name(runtime, name))
    return value if value and len(value) <= MAX_COOKIE_LENGTH else None


def csrf_token(runtime: AuthRuntime, request: Request[Any, Any, Any]) -> str:
    """The token a form shown on this request carries: bound to the browser and to its
    session (none before signing in), so it stops passing once either changes."""
    return _csrf_token(
        runtime, page_browser(runtime, request), read_cookie(runtime, request, SESSION_COOKIE)
    )


def _csrf_token(
    runtime: AuthRuntime, browser: str, session: str | None, *, previous: bool = False
) -> str:
    """Under the secret key, or (`previous`) under the one before a rotation, so that a
    page shown by a process that still runs with the old secret passes at one with both."""
    settings = runtime.settings
    key = settings.secret_key_previous if previous else settings.secret_key
    assert key is not None
    message = b"csrf\x00" + browser.encode() + b"\x00" + (session or "").encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def with_browser(
    runtime: AuthRuntime, request: Request[Any, Any, Any], response: Response[Any]
) -> Response[Any]:
    """`response`, with the browser cookie set if the browser had none."""
    if read_cookie(runtime, request, BROWSER_COOKIE) is None:
        response.set_cookie(cookie(runtime, BROWSER_COOKIE, page_browser(runtime, request)))
    return response


def page_browser(runtime: AuthRuntime, request: Request[Any, Any, Any]) -> str:
    """The browser's id: its cookie, or a new one (remembered on this request so a page
    and its form agree)."""
    known = read_cookie(runtime, request, BROWSER_COOKIE)
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
    browser = read_cookie(runtime, request, BROWSER_COOKIE)
    session = read_cookie(runtime, request, SESSION_COOKIE)
    sent = form.get("csrf_token", "")
    expected = [] if browser is None else [_csrf_token(runtime, browser, session)]
    if browser is not None and runtime.settings.secret_key_previous is not None:
        expected.append(_csrf_token(runtime, browser, session, previous=True))
    if not any(hmac.compare_digest(sent.encode(), token.encode()) for token in expected):
        raise PageError(
            "This form has expired or did not come from this site. Go back, reload the "
            "page and try again.",
            403,
        )
    return form
