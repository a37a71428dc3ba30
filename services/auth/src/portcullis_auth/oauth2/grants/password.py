"""Resource owner password credentials grant (RFC 6749 §4.3).

Only for confidential clients allowed it. Unknown user and wrong password
give the same answer in the same time; repeated failures back off with 429
(`password_check.py`).
"""

from __future__ import annotations

from portcullis_auth.oauth2.grants.base import Grant, Plan
from portcullis_auth.oauth2.password_check import check_password
from portcullis_auth.oauth2.request import TokenRequest
from portcullis_auth.oauth2.responses import TokenResponse
from portcullis_auth.oauth2.scopes import parse_requested_scope, resolve_audience, resolve_scopes
from portcullis_auth.records import Client


class PasswordGrant(Grant[Plan]):
    grant_type = "password"
    confidential_only = True

    async def validate(self, request: TokenRequest, client: Client) -> Plan:
        username = request.require("username")
        password = request.require("password")
        requested = parse_requested_scope(request.get("scope"), self.context.scopes)
        audience = resolve_audience(request.get("resource"), client)

        user = await check_password(
            self.context.users,
            self.context.throttle,
            username=username,
            password=password,
            client_ip=request.client_ip,
            client_id=client.id,
            caller_gone=request.caller_gone,
        )
        scopes = resolve_scopes(requested, client, user, self.context.scopes)
        return Plan(client=client, user=user, scopes=scopes, audience=audience)

    async def issue(self, plan: Plan) -> TokenResponse:
        issuer = self.context.issuer
        refresh_token = None
        sid = None
        if "refresh_token" in plan.client.grant_types:
            sid, refresh_token = await issuer.start_family(
                client=plan.client,
                user=plan.user,
                grant_type=self.grant_type,
                scopes=plan.scopes,
                audience=plan.audience,
            )
        access = await issuer.issue_access_token(
            client=plan.client, user=plan.user, scopes=plan.scopes, audience=plan.audience, sid=sid
        )
        return TokenResponse(access_token=access, refresh_token=refresh_token)
