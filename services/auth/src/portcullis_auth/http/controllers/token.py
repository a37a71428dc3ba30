"""POST /oauth/token (RFC 6749 §3.2)."""

from __future__ import annotations

import logging

from litestar import Controller, MediaType, Request, Response, route
from litestar.datastructures import State
from litestar.exceptions import MethodNotAllowedException

from portcullis_auth.http.dependencies import request_client_ip
from portcullis_auth.http.errors import NO_STORE
from portcullis_auth.http.publishing import publish_quietly
from portcullis_auth.oauth2.errors import OAuth2Error, TemporarilyUnavailableError
from portcullis_auth.oauth2.grants.base import GrantContext
from portcullis_auth.oauth2.request import TokenRequest, parse_form
from portcullis_auth.oauth2.token_endpoint import handle_token_request
from portcullis_auth.runtime import runtime_of
from portcullis_auth.services.clients import ClientService
from portcullis_auth.services.tokens import ClientChangedError, TokenService
from portcullis_auth.services.users import UserService
from portcullis_shared.sql import session_if_used

logger = logging.getLogger("portcullis.auth")

# A token request is a handful of short parameters.
MAX_TOKEN_REQUEST_BYTES = 16 * 1024

CLIENT_READS = 2
"""Attempts at a token request whose client's row changes under it: the first may
use a cached copy, the second reads the row afresh."""


class TokenController(Controller):
    path = "/oauth/token"

    @route(
        http_method=["GET", "PUT", "PATCH", "DELETE"],
        include_in_schema=False,
        status_code=405,
    )
    async def wrong_method(self) -> None:
        raise MethodNotAllowedException(
            "the token endpoint accepts POST only", headers={"Allow": "POST"}
        )

    @route(http_method="POST", request_max_body_size=MAX_TOKEN_REQUEST_BYTES)
    async def token(
        self, request: Request[object, object, State], state: State
    ) -> Response[dict[str, object]]:
        runtime = runtime_of(state)
        token_request = TokenRequest(
            form=parse_form(await request.body(), request.headers.get("content-type")),
            authorization=request.headers.get("authorization"),
            client_ip=request_client_ip(request, runtime),
        )
        for _ in range(CLIENT_READS):
            async with session_if_used(runtime.sessionmaker) as session:
                context = GrantContext(
                    tokens=TokenService(
                        session,
                        runtime.settings.tokens,
                        runtime.keyring,
                        runtime.access_token_recorder,
                        runtime.direct_tokens,
                    ),
                    users=UserService(session, runtime.hasher),
                    throttle=runtime.throttle,
                    scopes=runtime.settings.scopes,
                    settings=runtime.settings.tokens,
                )
                try:
                    result = await handle_token_request(
                        token_request, ClientService(session), context, cache=runtime.clients
                    )
                except ClientChangedError as changed:
                    # Rolled back with the session; read the client afresh and start over.
                    runtime.clients.forget(changed.client_id)
                    continue
                except OAuth2Error as error:
                    if error.keep_changes:
                        await session.commit()
                        await publish_quietly(runtime, context.tokens.revocations.recorded)
                    raise
                # Committed before answering: a token is only handed out once it is recorded.
                if session.in_transaction():
                    await session.commit()
            break
        else:
            raise TemporarilyUnavailableError()  # the client keeps changing under us
        return Response(
            result.to_dict(), status_code=200, media_type=MediaType.JSON, headers=NO_STORE
        )
