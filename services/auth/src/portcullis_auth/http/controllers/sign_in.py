"""GET/POST /sign-in and POST /sign-out: the auth service's own sign-in.

The same throttled argon2 check as the password grant (per (username, IP) and
per IP, the bounded hashing queue). A successful sign-in always starts a new
session, so a session cookie planted before it is worth nothing.
"""

from __future__ import annotations

from typing import Any

from litestar import Controller, MediaType, Request, Response, get, post
from litestar.response import Redirect

from portcullis_auth.db.models import utcnow
from portcullis_auth.http.client_address import caller_address
from portcullis_auth.http.pages import render
from portcullis_auth.http.pages.browser import (
    PAGE_HEADERS,
    SESSION_COOKIE,
    PageError,
    cookie,
    csrf_token,
    expired_cookie,
    read_cookie,
    read_form,
    with_browser,
)
from portcullis_auth.http.pages.session import SIGN_IN_PATH, safe_next, signed_in
from portcullis_auth.oauth2.errors import InvalidGrantError, TooManyAttemptsError
from portcullis_auth.oauth2.password_check import check_password
from portcullis_auth.runtime import AuthRuntime, report
from portcullis_auth.services.sign_in import SESSION_TTL, SignInService
from portcullis_auth.services.unit_of_work import UnitOfWork
from portcullis_auth.services.users import UserService
from portcullis_shared.dependencies import Injected

PAGES_CLIENT = "portcullis-pages"
"""How sign-ins on these pages are named in audit lines (no OAuth client is involved)."""


def sign_in_page(
    runtime: AuthRuntime,
    request: Request[Any, Any, Any],
    *,
    next_path: str,
    email: str = "",
    problem: str | None = None,
    status: int = 200,
) -> Response[str]:
    csrf = csrf_token(runtime, request)
    body = render.page(
        "Sign in",
        render.paragraph(problem, "error") if problem else "",
        render.form(
            SIGN_IN_PATH,
            csrf,
            render.text_input("email", "Email", kind="email", value=email)
            + render.text_input("password", "Password", kind="password")
            + render.button("Sign in"),
            fields={"next": next_path},
        ),
    )
    response = Response(body, status_code=status, media_type=MediaType.HTML, headers=PAGE_HEADERS)
    return with_browser(runtime, request, response)


class SignInController(Controller):
    include_in_schema = False

    @get(SIGN_IN_PATH)
    async def page(
        self, request: Request[Any, Any, Any], runtime: Injected[AuthRuntime]
    ) -> Response[str]:
        return sign_in_page(runtime, request, next_path=safe_next(request.query_params.get("next")))

    @post(SIGN_IN_PATH, status_code=303)
    async def sign_in(
        self,
        request: Request[Any, Any, Any],
        runtime: Injected[AuthRuntime],
        uow: Injected[UnitOfWork],
    ) -> Response[Any]:
        form = await read_form(runtime, request)
        next_path = safe_next(form.get("next"))
        email = form.get("email", "")
        address = caller_address(runtime, request)
        # The session is dated from before the password was checked, so that a change
        # lowering the user's trust while the check ran covers it (its cutoff).
        checked_from = utcnow()
        try:
            user = await check_password(
                UserService(uow.session, runtime.hasher),
                runtime.throttle,
                username=email,
                password=form.get("password", ""),
                client_ip=address,
                client_id=PAGES_CLIENT,
            )
        except InvalidGrantError as refused:
            if refused.audit is not None:
                report(refused.audit)
            return sign_in_page(
                runtime,
                request,
                next_path=next_path,
                email=email,
                problem="Wrong email or password.",
                status=400,
            )
        except TooManyAttemptsError as throttled:
            if throttled.audit is not None:
                report(throttled.audit)
            response = sign_in_page(
                runtime,
                request,
                next_path=next_path,
                email=email,
                problem="Too many failed attempts. Wait a while, then try again.",
                status=429,
            )
            response.headers.update(throttled.headers)
            return response
        session_cookie = await SignInService(uow.session).start(
            user.id, replacing=read_cookie(runtime, request, SESSION_COOKIE), since=checked_from
        )
        redirect = Redirect(next_path, status_code=303, headers=PAGE_HEADERS)
        redirect.set_cookie(cookie(runtime, SESSION_COOKIE, session_cookie, max_age=SESSION_TTL))
        return redirect

    @post("/sign-out", status_code=303)
    async def sign_out(
        self,
        request: Request[Any, Any, Any],
        runtime: Injected[AuthRuntime],
        uow: Injected[UnitOfWork],
    ) -> Response[Any]:
        await read_form(runtime, request)
        if await signed_in(runtime, uow, request) is None:
            raise PageError("You are not signed in.")
        await SignInService(uow.session).end(read_cookie(runtime, request, SESSION_COOKIE) or "")
        redirect = Redirect(SIGN_IN_PATH, status_code=303, headers=PAGE_HEADERS)
        redirect.set_cookie(expired_cookie(runtime, SESSION_COOKIE))
        return redirect
