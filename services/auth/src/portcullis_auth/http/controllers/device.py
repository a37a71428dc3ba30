"""The device flow's two ends (RFC 8628): POST /oauth/device/code for the device, and
GET/POST /oauth/device for its user.

A signed-in user types the code the device shows (or follows the link with it
filled in), sees which application asks for what, and allows or denies.
Wrong codes count per (sign-in session, client address) and per address with
the login throttle's back-off (§5.1), so guessing a live code does not pay.
"""

from __future__ import annotations

import uuid
from typing import Any

from litestar import Controller, MediaType, Request, Response, post
from litestar import get as http_get
from litestar.openapi.spec import OpenAPIResponse, OpenAPIType, Schema

from portcullis_auth.http.client_address import caller_address
from portcullis_auth.http.controllers.token import CLIENT_FIELDS, SCOPE_FIELDS
from portcullis_auth.http.errors import NO_STORE
from portcullis_auth.http.pages import render
from portcullis_auth.http.pages.browser import (
    PAGE_HEADERS,
    PageError,
    csrf_token,
    read_form,
    with_browser,
)
from portcullis_auth.http.pages.session import signed_in, to_sign_in
from portcullis_auth.http.rate_limits import address_budget
from portcullis_auth.oauth2.device import start_device_authorization
from portcullis_auth.oauth2.errors import OAuth2Error
from portcullis_auth.oauth2.request import TokenRequest, parse_form
from portcullis_auth.oauth2.scopes import resolve_scopes
from portcullis_auth.records import Client
from portcullis_auth.runtime import AuthRuntime
from portcullis_auth.security.rate_limits import Endpoint
from portcullis_auth.services.clients import ClientService
from portcullis_auth.services.devices import (
    DeviceService,
    PendingDevice,
    display_user_code,
    normalise_user_code,
)
from portcullis_auth.services.sign_in import SignedIn
from portcullis_auth.services.unit_of_work import UnitOfWork
from portcullis_shared.dependencies import Injected
from portcullis_shared.openapi import (
    CLIENT_SECURITY,
    OAUTH2_ERROR,
    answers,
    error_responses,
    form_body,
    json_content,
    object_schema,
    text,
)

DEVICE_PATH = "/oauth/device"
MAX_BODY_BYTES = 16 * 1024

DEVICE_REQUEST = form_body(object_schema({}, {**CLIENT_FIELDS, **SCOPE_FIELDS}, closed=False))
"""§3.1: the client's credentials (a public client's client_id alone), scope, resource."""
DEVICE_RESPONSE = object_schema(
    {
        "device_code": text("What the device polls the token endpoint with."),
        "user_code": text("What the user types (BCDF-GHJK)."),
        "verification_uri": text("Where the user types it."),
        "verification_uri_complete": text("The same, with the code filled in."),
        "expires_in": Schema(type=OpenAPIType.INTEGER),
        "interval": Schema(type=OpenAPIType.INTEGER, description="Seconds between polls."),
    },
    description="RFC 8628 §3.2.",
)


class DeviceController(Controller):
    @post(
        "/oauth/device/code",
        request_max_body_size=MAX_BODY_BYTES,
        status_code=200,
        guards=[address_budget(Endpoint.DEVICE)],
        security=CLIENT_SECURITY,
        operation_class=answers(
            error_responses(
                OAUTH2_ERROR,
                400,
                401,
                413,
                429,
                503,
                s400="invalid_request, unauthorized_client (not allowed the device grant), "
                "invalid_scope, invalid_target.",
                s401="invalid_client.",
            ),
            {"200": OpenAPIResponse(description="§3.2.", content=json_content(DEVICE_RESPONSE))},
            body=DEVICE_REQUEST,
        ),
    )
    async def start(
        self,
        request: Request[Any, Any, Any],
        runtime: Injected[AuthRuntime],
        uow: Injected[UnitOfWork],
    ) -> Response[dict[str, object]]:
        """§3.1: a device asks; a public client sends its `client_id` alone."""
        form = parse_form(await request.body(), request.headers.get("content-type"))
        token_request = TokenRequest(
            form=form,
            authorization=request.headers.get("authorization"),
            client_ip=caller_address(runtime, request),
        )
        body = await start_device_authorization(
            token_request,
            ClientService(uow.session),
            runtime.rate_limiter.for_clients(Endpoint.DEVICE),
            DeviceService(uow.session, runtime.settings.tokens.device_poll_interval),
            runtime.settings.scopes,
            runtime.settings.tokens.issuer,
        )
        return Response(body, media_type=MediaType.JSON, headers=NO_STORE)

    @http_get(
        DEVICE_PATH, guards=[address_budget(Endpoint.DEVICE, page=True)], include_in_schema=False
    )
    async def enter_code(
        self,
        request: Request[Any, Any, Any],
        runtime: Injected[AuthRuntime],
        uow: Injected[UnitOfWork],
    ) -> Response[Any]:
        user = await signed_in(runtime, uow, request)
        if user is None:
            return to_sign_in(request)
        return _code_page(runtime, request, user, request.query_params.get("user_code", ""))

    @post(
        DEVICE_PATH,
        status_code=200,
        guards=[address_budget(Endpoint.DEVICE, page=True)],
        include_in_schema=False,
    )
    async def check_code(
        self,
        request: Request[Any, Any, Any],
        runtime: Injected[AuthRuntime],
        uow: Injected[UnitOfWork],
    ) -> Response[Any]:
        form = await read_form(runtime, request)
        user = await signed_in(runtime, uow, request)
        if user is None:
            raise PageError("You are signed out. Sign in and type the code again.")
        typed = form.get("user_code", "")
        # Per user, not per sign-in: signing in again must not buy a fresh budget.
        guesser = f"device-code\x00{user.user.id}"
        address = caller_address(runtime, request)
        wait = await runtime.code_throttle.begin_attempt(guesser, address)
        if wait > 0:
            response = _code_page(
                runtime, request, user, typed, "Too many wrong codes. Wait, then try again.", 429
            )
            response.headers["Retry-After"] = str(wait)
            return response
        code = normalise_user_code(typed)
        devices = DeviceService(uow.session)
        pending = None if code is None else await devices.pending(code)
        if pending is None:
            return _code_page(
                runtime, request, user, typed, "That code is wrong, used or expired.", 400
            )
        # A right code takes its own attempt off the counts but forgets no wrong one: a
        # guesser could otherwise type the code of a device flow of their own between
        # guesses and guess on for ever.
        await runtime.code_throttle.withdraw(guesser, address)
        client, allowed = await _may_allow(runtime, uow, pending, user)
        csrf = csrf_token(runtime, request)
        buttons = (
            render.button("Allow", name="decision", value="approve") if allowed else ""
        ) + render.button("Deny", name="decision", value="deny")
        body = render.page(
            f"Allow {client.name} on your device?",
            render.paragraph(
                f"Signed in as {user.email}. The device showing {display_user_code(code or '')} "
                f"asks to act for you as {client.name} with:"
            ),
            render.scope_list(pending.scopes, runtime.settings.scopes.descriptions),
            ""
            if allowed
            else render.paragraph("It asks for more than your account holds: deny it.", "error"),
            render.form(
                f"{DEVICE_PATH}/answer", csrf, buttons, fields={"authorization": str(pending.id)}
            ),
        )
        return with_browser(
            runtime, request, Response(body, media_type=MediaType.HTML, headers=PAGE_HEADERS)
        )

    @post(
        f"{DEVICE_PATH}/answer",
        status_code=200,
        guards=[address_budget(Endpoint.DEVICE, page=True)],
        include_in_schema=False,
    )
    async def answer(
        self,
        request: Request[Any, Any, Any],
        runtime: Injected[AuthRuntime],
        uow: Injected[UnitOfWork],
    ) -> Response[str]:
        form = await read_form(runtime, request)
        user = await signed_in(runtime, uow, request)
        if user is None:
            raise PageError("You are signed out. Sign in and type the code again.")
        try:
            authorization_id = uuid.UUID(form.get("authorization", ""))
        except ValueError:
            raise PageError("The form could not be read.") from None
        approved = form.get("decision") == "approve"
        devices = DeviceService(uow.session)
        pending = await devices.pending_by_id(authorization_id)
        if pending is None:
            raise PageError("That request was already answered or has expired.")
        if approved and not (await _may_allow(runtime, uow, pending, user))[1]:
            # No Allow button was shown; one added by hand gets no further.
            raise PageError("It asks for more than your account holds.", status=403)
        if not await devices.answer(authorization_id, user.user.id, approved):
            raise PageError("That request was already answered or has expired.")
        outcome = "allowed" if approved else "denied"
        body = render.page(
            "Done", render.paragraph(f"You {outcome} the request. You may go back to your device.")
        )
        return Response(body, media_type=MediaType.HTML, headers=PAGE_HEADERS)


async def _may_allow(
    runtime: AuthRuntime, uow: UnitOfWork, pending: PendingDevice, user: SignedIn
) -> tuple[Client, bool]:
    """The client asking, and whether this user may allow what it asks (not when it asks
    for a privileged scope the user's account does not hold)."""
    client = await ClientService(uow.session).find(pending.client_id)
    if client is None:
        raise PageError("The application asking for access is no longer registered.")
    try:
        resolve_scopes(frozenset(pending.scopes), client, user.user, runtime.settings.scopes)
    except OAuth2Error:
        return client, False
    return client, True


def _code_page(
    runtime: AuthRuntime,
    request: Request[Any, Any, Any],
    user: SignedIn,
    typed: str,
    problem: str | None = None,
    status: int = 200,
) -> Response[str]:
    csrf = csrf_token(runtime, request)
    body = render.page(
        "Connect a device",
        render.paragraph(f"Signed in as {user.email}. Type the code your device shows."),
        render.paragraph(problem, "error") if problem else "",
        render.form(
            DEVICE_PATH,
            csrf,
            render.text_input("user_code", "Code", value=typed) + render.button("Continue"),
        ),
    )
    response = Response(body, status_code=status, media_type=MediaType.HTML, headers=PAGE_HEADERS)
    return with_browser(runtime, request, response)
