"""The token endpoint (RFC 6749 §3.2): authenticate the client, run its grant."""

from __future__ import annotations

from portcullis_auth.oauth2.client_auth import extract_client_credentials
from portcullis_auth.oauth2.grants.base import GrantContext
from portcullis_auth.oauth2.grants.registry import DEFAULT_GRANTS, GrantRegistry
from portcullis_auth.oauth2.request import TokenRequest
from portcullis_auth.services.clients import ClientCache, ClientService
from portcullis_auth.services.tokens import TokenResponse


async def handle_token_request(
    request: TokenRequest,
    clients: ClientService,
    context: GrantContext,
    registry: GrantRegistry = DEFAULT_GRANTS,
    cache: ClientCache | None = None,
) -> TokenResponse:
    """The token response, or an OAuth2Error; `ClientChangedError` when the client's
    row changed under the request (nothing is recorded then: start over)."""
    credentials = extract_client_credentials(request)
    grant_type = request.require("grant_type")
    client = await clients.authenticate(credentials, cache)
    grant = registry.create(grant_type, context)
    grant.check_client(client)
    return await grant.issue(request, client)
