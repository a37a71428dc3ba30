"""Who is signed in to the pages, and sending people to sign in."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from litestar import Request, Response
from litestar.response import Redirect

from portcullis_auth.http.pages.browser import SESSION_COOKIE, read_cookie
from portcullis_auth.runtime import AuthRuntime
from portcullis_auth.services.sign_in import SignedIn, SignInService
from portcullis_auth.services.unit_of_work import UnitOfWork

SIGN_IN_PATH = "/sign-in"
HOME_PATH = "/account/applications"


async def signed_in(
    runtime: AuthRuntime, uow: UnitOfWork, request: Request[Any, Any, Any]
) -> SignedIn | None:
    cookie = read_cookie(runtime, request, SESSION_COOKIE)
    if cookie is None:
        return None
    return await SignInService(uow.session).find(cookie)


def to_sign_in(request: Request[Any, Any, Any]) -> Response[Any]:
    """Off to sign in, and back here afterwards."""
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return Redirect(f"{SIGN_IN_PATH}?{urlencode({'next': here})}", status_code=303)


def safe_next(target: str | None) -> str:
    """Where to go after signing in: a path on this site, never another site."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")):
        return HOME_PATH
    return target
