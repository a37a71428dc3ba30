"""Client credentials grant (RFC 6749 §4.4): the token speaks for the client."""

from __future__ import annotations

from portcullis_auth.oauth2.grants.base import Grant, Plan
from portcullis_auth.oauth2.request import TokenRequest
from portcullis_auth.oauth2.responses import TokenResponse
from portcullis_auth.oauth2.scopes import parse_requested_scope, resolve_audience, resolve_scopes
from portcullis_auth.records import Client


class ClientCredentialsGrant(Grant[Plan]):
    grant_type = "client_credentials"
    confidential_only = True

    async def validate(self, request: TokenRequest, client: Client) -> Plan:
        requested = parse_requested_scope(request.get("scope"), self.context.scopes)
        return Plan(
            client=client,
            user=None,
            scopes=resolve_scopes(requested, client, None, self.context.scopes),
            audience=resolve_audience(request.get("resource"), client),
        )

    async def issue(self, plan: Plan) -> TokenResponse:
        # §4.4.3: no refresh token; `sub` is the client id, never a user. The token is
        # all this request writes, so its record may share a statement with others'.
        access = await self.context.issuer.issue_access_token(
            client=plan.client,
            user=None,
            scopes=plan.scopes,
            audience=plan.audience,
            only_write=True,
        )
        return TokenResponse(access_token=access)
