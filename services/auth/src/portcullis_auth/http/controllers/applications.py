"""Authorized applications: GET /account/applications (a page) and
/oauth/authorized-applications (JSON, for a first-party user token).

A user sees which applications they let in (scopes, when, last use) and takes
one back: every grant given to it ends, and its tokens are refused everywhere
within a second.
"""

from __future__ import annotations

from datetime import datetime
from html import escape
from typing import Any

import msgspec
from litestar import Controller, MediaType, Request, Response, delete, get, post
from litestar.exceptions import NotFoundException
from litestar.params import FromPath
from litestar.response import Redirect

from portcullis_auth.http.authentication import (
    ACCOUNT_SECURITY,
    FIRST_PARTY_ERRORS,
    bearer_caller,
    first_party_login,
)
from portcullis_auth.http.pages import render
from portcullis_auth.http.pages.browser import (
    PAGE_HEADERS,
    PageError,
    csrf_token,
    read_form,
    with_browser,
)
from portcullis_auth.http.pages.session import HOME_PATH, signed_in, to_sign_in
from portcullis_auth.oauth2.errors import InvalidRequestError
from portcullis_auth.records import User
from portcullis_auth.runtime import AuthRuntime
from portcullis_auth.security.secrets import is_client_id
from portcullis_auth.services.applications import ApplicationService, AuthorizedApplication
from portcullis_auth.services.unit_of_work import UnitOfWork
from portcullis_shared.dependencies import Injected
from portcullis_shared.openapi import BEARER_ERROR, answers, error_responses


class AuthorizedApplicationOut(msgspec.Struct):
    client_id: str
    name: str
    scopes: list[str]
    granted_at: datetime
    last_used_at: datetime | None


class AuthorizedApplicationsController(Controller):
    path = "/oauth/authorized-applications"
    guards = [bearer_caller, first_party_login]  # noqa: RUF012 - Litestar reads it here
    security = ACCOUNT_SECURITY

    @get("/", operation_class=answers(FIRST_PARTY_ERRORS))
    async def list_applications(
        self, first_party_user: Injected[User], uow: Injected[UnitOfWork]
    ) -> list[AuthorizedApplicationOut]:
        applications = ApplicationService(uow.session, uow.revocations)
        return [_out(app) for app in await applications.list(first_party_user.id)]

    @delete(
        "/{client_id:str}",
        status_code=204,
        operation_class=answers(
            FIRST_PARTY_ERRORS,
            error_responses(
                BEARER_ERROR,
                400,
                404,
                s400="invalid_request: that is not a client id.",
                s404="not_found: no application of yours by that id.",
            ),
        ),
    )
    async def revoke(
        self,
        first_party_user: Injected[User],
        uow: Injected[UnitOfWork],
        client_id: FromPath[str],
    ) -> None:
        if not is_client_id(client_id):
            raise InvalidRequestError("that is not a client id")
        applications = ApplicationService(uow.session, uow.revocations)
        if not await applications.revoke(first_party_user.id, client_id):
            raise NotFoundException("no application of yours by that id")


class ApplicationsPageController(Controller):
    include_in_schema = False

    @get(HOME_PATH)
    async def page(
        self,
        request: Request[Any, Any, Any],
        runtime: Injected[AuthRuntime],
        uow: Injected[UnitOfWork],
    ) -> Response[Any]:
        user = await signed_in(runtime, uow, request)
        if user is None:
            return to_sign_in(request)
        applications = await ApplicationService(uow.session, uow.revocations).list(user.user.id)
        csrf = csrf_token(runtime, request)
        rows = "".join(
            "<tr>"
            f"<td>{escape(app.name)}</td><td>{escape(' '.join(app.scopes))}</td>"
            f"<td>{escape(_when(app.granted_at))}</td><td>{escape(_when(app.last_used_at))}</td>"
            "<td>"
            + render.form(
                f"{HOME_PATH}/{app.client_id}/revoke",
                csrf,
                render.button("Revoke", name="revoke", value=app.client_id),
            )
            + "</td></tr>"
            for app in applications
        )
        table = (
            "<table><tr><th>Application</th><th>Scopes</th><th>Since</th><th>Last used</th>"
            f"<th></th></tr>{rows}</table>"
            if applications
            else render.paragraph("No application has access to your account.")
        )
        body = render.page(
            "Authorized applications",
            render.paragraph(f"Signed in as {user.email}."),
            table,
            render.form("/sign-out", csrf, render.button("Sign out", name="sign-out", value="me")),
        )
        return with_browser(
            runtime, request, Response(body, media_type=MediaType.HTML, headers=PAGE_HEADERS)
        )

    @post(f"{HOME_PATH}/{{client_id:str}}/revoke", status_code=303)
    async def revoke(
        self,
        request: Request[Any, Any, Any],
        runtime: Injected[AuthRuntime],
        uow: Injected[UnitOfWork],
        client_id: FromPath[str],
    ) -> Response[Any]:
        await read_form(runtime, request)
        if not is_client_id(client_id):
            raise PageError("That is not an application of yours.")
        user = await signed_in(runtime, uow, request)
        if user is None:
            raise PageError("You are signed out.")
        await ApplicationService(uow.session, uow.revocations).revoke(user.user.id, client_id)
        return Redirect(HOME_PATH, status_code=303, headers=PAGE_HEADERS)


def _out(app: AuthorizedApplication) -> AuthorizedApplicationOut:
    return AuthorizedApplicationOut(
        client_id=app.client_id,
        name=app.name,
        scopes=app.scopes,
        granted_at=app.granted_at,
        last_used_at=app.last_used_at,
    )


def _when(moment: datetime | None) -> str:
    return "never" if moment is None else moment.strftime("%Y-%m-%d %H:%M UTC")
