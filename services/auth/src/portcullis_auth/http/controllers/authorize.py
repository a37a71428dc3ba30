"""GET/POST /oauth/authorize: the authorization code flow's front half (RFC 6749 §4.1).

GET validates the request, sends the user to sign in if needed, and either
answers at once (a first-party client, or a consent already given for these
scopes) or shows the consent page. The consent page posts the request back
with the user's decision; approving remembers the consent. Either way the
answer goes to the client's redirect URI with `state` as it came and `iss`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from litestar import Controller, MediaType, Request, Response, get, post
from litestar.enums import ParamType
from litestar.openapi.spec import (
    OpenAPIHeader,
    OpenAPIMediaType,
    OpenAPIResponse,
    OpenAPIType,
    Parameter,
    Schema,
)
from litestar.response import Redirect

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
from portcullis_auth.oauth2.authorization import (
    PARAMETERS,
    AuthorizationPageError,
    AuthorizationRedirectError,
    AuthorizationRequest,
    RedirectTarget,
    answer_uri,
    error_uri,
    validate_authorization_request,
)
from portcullis_auth.oauth2.errors import AccessDeniedError, OAuth2Error
from portcullis_auth.runtime import AuthRuntime
from portcullis_auth.security.rate_limits import Endpoint
from portcullis_auth.services.authorization import AuthorizationService
from portcullis_auth.services.clients import CachedClientStore
from portcullis_auth.services.sign_in import SignedIn
from portcullis_auth.services.unit_of_work import UnitOfWork
from portcullis_shared.dependencies import Injected
from portcullis_shared.openapi import OAUTH2_ERROR, answers, error_responses, page_responses

AUTHORIZE_PATH = "/oauth/authorize"


def _query(name: str, description: str, *, required: bool = False, **extra: Any) -> Parameter:
    return Parameter(
        name=name,
        param_in=ParamType.QUERY,
        required=required,
        schema=Schema(type=OpenAPIType.STRING, **extra),
        description=description,
    )


AUTHORIZATION_REQUEST = [
    _query("response_type", "Always code.", required=True, enum=["code"]),
    _query("client_id", "The client asking.", required=True),
    _query("redirect_uri", "One the client registered (loopback: any port).", required=True),
    _query("scope", "Space-separated; none: the client's default scopes."),
    _query("state", "Carried back as it came."),
    _query("code_challenge", "PKCE S256 challenge (RFC 7636 §4.2).", required=True),
    _query("code_challenge_method", "Only S256.", required=True, enum=["S256"]),
    _query("resource", "RFC 8707: the audience wanted."),
]
"""RFC 6749 §4.1.1 with PKCE: what `GET /oauth/authorize` reads. Each at most once."""

AUTHORIZE_ANSWERS = answers(
    {
        "200": OpenAPIResponse(
            description="The consent page, for a signed-in user.",
            content={
                MediaType.HTML.value: OpenAPIMediaType(schema=Schema(type=OpenAPIType.STRING))
            },
        ),
        "303": OpenAPIResponse(
            description="To the sign-in page, or to the redirect URI with `code` or `error` "
            "(RFC 6749 §4.1.2), `state` and `iss` (RFC 9207).",
            headers={
                "Location": OpenAPIHeader(schema=Schema(type=OpenAPIType.STRING), required=True)
            },
        ),
    },
    page_responses(
        400,
        429,
        s400="An error page: the client or redirect URI is unknown (never redirected to), or "
        "a parameter is repeated or holds NUL.",
    ),
    error_responses(OAUTH2_ERROR, 503),
    parameters=AUTHORIZATION_REQUEST,
)


class AuthorizeController(Controller):
    @get(
        AUTHORIZE_PATH,
        guards=[address_budget(Endpoint.AUTHORIZATION, page=True)],
        operation_class=AUTHORIZE_ANSWERS,
    )
    async def authorize(
        self,
        request: Request[Any, Any, Any],
        runtime: Injected[AuthRuntime],
        uow: Injected[UnitOfWork],
    ) -> Response[Any]:
        params = _single_values(request)
        try:
            authorization = await _validate(runtime, params)
        except AuthorizationRedirectError as redirected:
            return _redirect_error(runtime, redirected.target, redirected.error)
        user = await signed_in(runtime, uow, request)
        if user is None:
            return to_sign_in(request)
        codes = AuthorizationService(uow.session, uow.revocations)
        try:
            scopes = authorization.scopes_for(user.user, runtime.settings.scopes)
        except OAuth2Error as error:
            return _redirect_error(runtime, _target(authorization), error)
        if _identity_proven(authorization) and (
            authorization.client.first_party
            or await codes.has_consent(user.user.id, authorization.client.id, scopes)
        ):
            return await _answer_with_code(runtime, codes, authorization, user, scopes)
        return _consent_page(runtime, request, authorization, user, scopes, params)

    @post(
        AUTHORIZE_PATH,
        status_code=303,
        guards=[address_budget(Endpoint.AUTHORIZATION, page=True)],
        include_in_schema=False,
    )
    async def decide(
        self,
        request: Request[Any, Any, Any],
        runtime: Injected[AuthRuntime],
        uow: Injected[UnitOfWork],
    ) -> Response[Any]:
        form = await read_form(runtime, request)
        try:
            authorization = await _validate(runtime, form)
        except AuthorizationRedirectError as redirected:
            return _redirect_error(runtime, redirected.target, redirected.error)
        user = await signed_in(runtime, uow, request)
        if user is None:
            raise PageError("You are signed out. Go back to the application and start again.")
        if form.get("decision") != "approve":
            denied = AccessDeniedError("the user denied the request")
            return _redirect_error(runtime, _target(authorization), denied)
        try:
            scopes = authorization.scopes_for(user.user, runtime.settings.scopes)
        except OAuth2Error as error:
            return _redirect_error(runtime, _target(authorization), error)
        codes = AuthorizationService(uow.session, uow.revocations)
        await codes.remember_consent(user.user.id, authorization.client.id, scopes)
        return await _answer_with_code(runtime, codes, authorization, user, scopes)


async def _validate(runtime: AuthRuntime, params: Mapping[str, str]) -> AuthorizationRequest:
    try:
        return await validate_authorization_request(
            params, CachedClientStore(runtime.clients), runtime.settings.scopes
        )
    except AuthorizationPageError as refused:
        raise PageError(str(refused)) from None


def _identity_proven(authorization: AuthorizationRequest) -> bool:
    """Whether the app asking is the client it names: a confidential client (it will
    authenticate to redeem the code), or a public one answered at an https address.
    A public client answered on a loopback port or a private-use scheme could be any
    local program, so it is asked every time, first-party or not, whatever was
    allowed before (RFC 8252 §8.6, RFC 6749 §10.2)."""
    return (
        not authorization.client.is_public or urlsplit(authorization.redirect_uri).scheme == "https"
    )


def _single_values(request: Request[Any, Any, Any]) -> dict[str, str]:
    """The query's parameters; one sent twice is a request nobody can read (§3.1)."""
    params: dict[str, str] = {}
    for name, value in request.query_params.multi_items():
        if name in params:
            # Only a name of the protocol's is echoed: another may be a pasted secret.
            raise PageError(
                f"The request names {name if name in PARAMETERS else 'a parameter'} twice."
            )
        if "\x00" in value:
            raise PageError("The request holds a NUL character.")
        params[name] = value
    return params


def _target(authorization: AuthorizationRequest) -> RedirectTarget:
    return RedirectTarget(authorization.redirect_uri, authorization.state)


def _redirect_error(
    runtime: AuthRuntime, target: RedirectTarget, error: OAuth2Error
) -> Response[Any]:
    location = error_uri(target, runtime.settings.tokens.issuer, error)
    return Redirect(location, status_code=303, headers=PAGE_HEADERS)


async def _answer_with_code(
    runtime: AuthRuntime,
    codes: AuthorizationService,
    authorization: AuthorizationRequest,
    user: SignedIn,
    scopes: frozenset[str],
) -> Response[Any]:
    code = await codes.issue_code(
        client_id=authorization.client.id,
        user_id=user.user.id,
        redirect_uri=authorization.redirect_uri,
        scopes=scopes,
        audience=authorization.audience,
        code_challenge=authorization.code_challenge,
    )
    location = answer_uri(_target(authorization), runtime.settings.tokens.issuer, code=code)
    return Redirect(location, status_code=303, headers=PAGE_HEADERS)


def _consent_page(
    runtime: AuthRuntime,
    request: Request[Any, Any, Any],
    authorization: AuthorizationRequest,
    user: SignedIn,
    scopes: frozenset[str],
    params: Mapping[str, str],
) -> Response[str]:
    csrf = csrf_token(runtime, request)
    carried = {name: params[name] for name in PARAMETERS if name in params}
    body = render.page(
        f"Allow {authorization.client.name}?",
        render.paragraph(
            f"Signed in as {user.email}. {authorization.client.name} asks to act for you with:"
        ),
        render.scope_list(scopes, runtime.settings.scopes.descriptions),
        render.form(
            AUTHORIZE_PATH,
            csrf,
            render.button("Allow", name="decision", value="approve")
            + render.button("Deny", name="decision", value="deny"),
            fields=carried,
        ),
    )
    response = Response(body, media_type=MediaType.HTML, headers=PAGE_HEADERS)
    return with_browser(runtime, request, response)
