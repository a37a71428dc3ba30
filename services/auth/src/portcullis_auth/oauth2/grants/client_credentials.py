"""Client credentials grant (RFC 6749 §4.4): the token speaks for the client."""

from __future__ import annotations

from portcullis_auth import events
from portcullis_auth.db.models import OAuthClient
from portcullis_auth.oauth2.grants.base import Grant
from portcullis_auth.oauth2.request import TokenRequest
from portcullis_auth.oauth2.scopes import parse_requested_scope, resolve_audience, resolve_scopes
from portcullis_auth.services.tokens import TokenResponse


class ClientCredentialsGrant(Grant):
    grant_type = "client_credentials"
    confidential_only = True

    async def issue(self, request: TokenRequest, client: OAuthClient) -> TokenResponse:
        requested = parse_requested_scope(request.get("scope"), self.context.scopes)
        scopes = resolve_scopes(requested, client, None, self.context.scopes)
        audience = resolve_audience(request.get("resource"), client)
        # §4.4.3: no refresh token; `sub` is the client id, never a user. The token is
        # all this request writes, so its record may share a statement with others'.
        access = await self.context.tokens.issue_access_token(
            client=client, user=None, scopes=scopes, audience=audience, only_write=True
        )
        events.emit(
            "token_issued",
            grant_type=self.grant_type,
            jti=access.jti,
            sid=access.jti,
            client=client.id,
        )
        return TokenResponse(access_token=access)
