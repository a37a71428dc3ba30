"""Authorization code grant (RFC 6749 §4.1.3), with PKCE (RFC 7636) for every client.

A code is redeemed once, by the client it was issued to, with the redirect
URI it was issued for and the verifier of its challenge, within its lifetime.
A second use fails and revokes whatever the first use issued (§4.1.2): one of
the two callers holds a stolen code.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from portcullis_auth.oauth2.errors import InvalidGrantError, ReusedAuthorizationCodeError
from portcullis_auth.oauth2.grants.base import Grant, Plan, check_still_allowed
from portcullis_auth.oauth2.pkce import check_verifier
from portcullis_auth.oauth2.request import TokenRequest
from portcullis_auth.oauth2.responses import TokenResponse
from portcullis_auth.records import AuthorizationCode, Client

_INVALID = "the authorization code is invalid, expired or used"


@dataclass(frozen=True, slots=True)
class CodePlan(Plan):
    code: AuthorizationCode


class AuthorizationCodeGrant(Grant[CodePlan]):
    grant_type = "authorization_code"

    async def validate(self, request: TokenRequest, client: Client) -> CodePlan:
        presented = request.require("code")
        redirect_uri = request.require("redirect_uri")
        verifier = request.get("code_verifier")
        code = await self.context.codes.find_code(presented)
        if code is None or code.client_id != client.id:
            # Bound to its client: another client's attempt uses nothing up.
            raise InvalidGrantError(_INVALID)
        if code.used_at is not None:
            raise ReusedAuthorizationCodeError(code)
        if code.expires_at <= datetime.now(UTC) or redirect_uri != code.redirect_uri:
            raise InvalidGrantError(_INVALID)
        check_verifier(verifier, code.code_challenge)
        check_still_allowed(client, self.grant_type, code.scopes, code.user, self.context.scopes)
        return CodePlan(
            client=client,
            user=code.user,
            scopes=frozenset(code.scopes),
            audience=code.audience,
            code=code,
        )

    async def issue(self, plan: CodePlan) -> TokenResponse:
        codes, issuer = self.context.codes, self.context.issuer
        if not await codes.redeem_code(plan.code.id):
            # Another request redeemed it first: a second use all the same.
            raise ReusedAuthorizationCodeError(plan.code)
        family_id, refresh_token = await issuer.start_family(
            client=plan.client,
            user=plan.user,
            grant_type=self.grant_type,
            scopes=plan.scopes,
            audience=plan.audience,
            refresh="refresh_token" in plan.client.grant_types,
        )
        await codes.link_family(plan.code.id, family_id)
        access = await issuer.issue_access_token(
            client=plan.client,
            user=plan.user,
            scopes=plan.scopes,
            audience=plan.audience,
            sid=family_id,
        )
        return TokenResponse(access_token=access, refresh_token=refresh_token)
