"""POST /oauth/revoke (RFC 7009) and POST /oauth/introspect (RFC 7662)."""

from __future__ import annotations

from typing import Any

from litestar import Controller, MediaType, Request, Response, post
from litestar.openapi.spec import OpenAPIResponse, OpenAPIType, Schema

from portcullis_auth.db.models import utcnow
from portcullis_auth.http.client_address import caller_address
from portcullis_auth.http.controllers.token import CLIENT_FIELDS
from portcullis_auth.http.errors import NO_STORE
from portcullis_auth.http.rate_limits import address_budget
from portcullis_auth.oauth2.client_auth import authenticate_within_budget
from portcullis_auth.oauth2.errors import UnauthorizedClientError
from portcullis_auth.oauth2.request import TokenRequest, parse_form
from portcullis_auth.records import Client
from portcullis_auth.runtime import AuthRuntime
from portcullis_auth.security.rate_limits import Endpoint
from portcullis_auth.services.clients import ClientService
from portcullis_auth.services.token_lookup import (
    FoundAccessToken,
    FoundToken,
    TokenLookup,
    owner_of,
)
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

MAX_BODY_BYTES = 16 * 1024

TOKEN_FORM = form_body(
    object_schema(
        {"token": text("An access or refresh token.")},
        {
            "token_type_hint": text("access_token or refresh_token; a hint only."),
            **CLIENT_FIELDS,
        },
        closed=False,
    )
)
"""RFC 7009 §2.1, RFC 7662 §2.1: the token, and the client's credentials unless Basic."""
_INTEGER = Schema(type=OpenAPIType.INTEGER)
INTROSPECTION = object_schema(
    {"active": Schema(type=OpenAPIType.BOOLEAN)},
    {
        "token_type": Schema(type=OpenAPIType.STRING, enum=["access_token", "refresh_token"]),
        "scope": text("Space-separated."),
        "client_id": text("The client the token was issued to."),
        "sub": text("The user id, or the client id for a client's own token."),
        "aud": text("The audience (access tokens)."),
        "iss": text("The issuer."),
        "exp": _INTEGER,
        "iat": _INTEGER,
        "jti": text("The access token's id."),
        "sid": text("The grant the token belongs to."),
    },
    description="RFC 7662 §2.2: only `active: false` for a token that is not live or not "
    "the caller's to see.",
)

CLIENT_ERRORS = error_responses(
    OAUTH2_ERROR,
    400,
    401,
    413,
    429,
    503,
    s400="invalid_request (no `token`, or not a form).",
    s401="invalid_client: client authentication is required and failed.",
)


async def _client_and_token(
    request: Request[Any, Any, Any],
    runtime: AuthRuntime,
    clients: ClientService,
    endpoint: Endpoint,
) -> tuple[Client, str]:
    """RFC 7009 §2.1 / RFC 7662 §2.1: an authenticated client, within its budget of
    `endpoint`, and the `token` it names."""
    form = parse_form(await request.body(), request.headers.get("content-type"))
    token_request = TokenRequest(
        form=form,
        authorization=request.headers.get("authorization"),
        client_ip=caller_address(runtime, request),
    )
    budget = runtime.rate_limiter.for_clients(endpoint)
    client = await authenticate_within_budget(token_request, clients, budget)
    return client, token_request.require("token")


class RevocationController(Controller):
    @post(
        "/oauth/revoke",
        request_max_body_size=MAX_BODY_BYTES,
        status_code=200,
        guards=[address_budget(Endpoint.REVOCATION)],
        security=CLIENT_SECURITY,
        operation_class=answers(
            {"200": OpenAPIResponse(description="Revoked, or unknown (§2.2): no body.")},
            CLIENT_ERRORS,
            error_responses(
                OAUTH2_ERROR,
                400,
                503,
                s400="invalid_request; unauthorized_client: the token was issued to another "
                "client and was not revoked (RFC 7009 §2.1).",
                s503="Redis or the database cannot be reached: the revocation is recorded and "
                "lands later, but was not yet seen everywhere.",
            ),
            body=TOKEN_FORM,
        ),
    )
    async def revoke(
        self,
        request: Request[Any, Any, Any],
        runtime: Injected[AuthRuntime],
        uow: Injected[UnitOfWork],
    ) -> Response[bytes]:
        """§2.1: the client revokes one of its own tokens; unknown tokens are not an error."""
        clients = ClientService(uow.session)
        client, token = await _client_and_token(request, runtime, clients, Endpoint.REVOCATION)
        found = await TokenLookup(uow.session, runtime.keyring).find(token)
        if found is not None and owner_of(found) != client.id:
            # §2.1: the token was issued to another client; it is left alone and the
            # caller is told so (a 200 would claim a revocation that did not happen).
            raise UnauthorizedClientError(await _not_yours(clients, owner_of(found)))
        if isinstance(found, FoundAccessToken):
            await uow.revocations.revoke_access_token(found.record, reason="rfc7009")
        elif found is not None:
            # A refresh token takes its whole grant with it.
            family = found.family
            await uow.revocations.revoke_grant(
                family.id, reason="rfc7009", client_id=family.client_id, user_id=family.user_id
            )
        return Response(b"", status_code=200, headers=NO_STORE)

    @post(
        "/oauth/introspect",
        request_max_body_size=MAX_BODY_BYTES,
        status_code=200,
        guards=[address_budget(Endpoint.INTROSPECTION)],
        security=CLIENT_SECURITY,
        operation_class=answers(
            {
                "200": OpenAPIResponse(
                    description="RFC 7662 §2.2.", content=json_content(INTROSPECTION)
                )
            },
            CLIENT_ERRORS,
            body=TOKEN_FORM,
        ),
    )
    async def introspect(
        self,
        request: Request[Any, Any, Any],
        runtime: Injected[AuthRuntime],
        uow: Injected[UnitOfWork],
    ) -> Response[dict[str, object]]:
        """§2.2: active only for a live token the caller may see; everything else is inactive."""
        client, token = await _client_and_token(
            request, runtime, ClientService(uow.session), Endpoint.INTROSPECTION
        )
        found = await TokenLookup(uow.session, runtime.keyring).find(token)
        body = describe(found, client, runtime.settings.tokens.issuer)
        return Response(body, status_code=200, media_type=MediaType.JSON, headers=NO_STORE)


async def _not_yours(clients: ClientService, owner_id: str) -> str:
    owner = await clients.get(owner_id)
    if owner is not None and owner.personal_access:
        return (
            "the token is a personal access token, issued to another client: revoke it with "
            "DELETE /oauth/personal-access-tokens/{id}, or log out with it"
        )
    return "the token was issued to another client; it was not revoked"


def describe(found: FoundToken | None, caller: Client, issuer: str) -> dict[str, object]:
    inactive: dict[str, object] = {"active": False}
    if found is None or (owner_of(found) != caller.id and not caller.introspect):
        return inactive
    now = utcnow()
    if isinstance(found, FoundAccessToken):
        record = found.record
        if record.revoked_at is not None or record.expires_at <= now:
            return inactive
        return {
            "active": True,
            "token_type": "access_token",
            "scope": " ".join(sorted(record.scopes)),
            "client_id": record.client_id,
            "sub": found.claims.get("sub"),
            "aud": record.audience,
            "iss": issuer,
            "exp": int(record.expires_at.timestamp()),
            "iat": found.claims.get("iat"),
            "jti": str(record.jti),
            "sid": str(record.sid),
        }
    token, family = found.token, found.family
    if (
        token.revoked_at is not None
        or token.used_at is not None
        or family.revoked_at is not None
        or min(token.expires_at, family.expires_at) <= now
    ):
        return inactive
    return {
        "active": True,
        "token_type": "refresh_token",
        "scope": " ".join(sorted(family.scopes)),
        "client_id": family.client_id,
        "sub": str(family.user_id) if family.user_id else family.client_id,
        "iss": issuer,
        "exp": int(min(token.expires_at, family.expires_at).timestamp()),
        "iat": int(token.created_at.timestamp()),
        "sid": str(family.id),
    }
