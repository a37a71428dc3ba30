"""The token endpoint (RFC 6749 §3.2): authenticate the client, validate, issue, report.

Every event of a token request is reported here, through the context's audit
hook, and nowhere else: what was issued, and what was refused with a reason
worth keeping.
"""

from __future__ import annotations

from portcullis_auth.oauth2.audit import AuditEvent
from portcullis_auth.oauth2.client_auth import authenticate_within_budget
from portcullis_auth.oauth2.errors import (
    OAuth2Error,
    ReusedAuthorizationCodeError,
    ReusedRefreshTokenError,
)
from portcullis_auth.oauth2.grants.base import GrantContext, Plan
from portcullis_auth.oauth2.grants.registry import DEFAULT_GRANTS, GrantRegistry
from portcullis_auth.oauth2.request import TokenRequest
from portcullis_auth.oauth2.responses import TokenResponse


async def handle_token_request(
    request: TokenRequest, context: GrantContext, registry: GrantRegistry = DEFAULT_GRANTS
) -> TokenResponse:
    """The token response, or an OAuth2Error. Anything the ports raise (a backend
    down, the client's row changed under the request) passes through unchanged."""
    client = await authenticate_within_budget(request, context.clients, context.client_rate_limit)
    grant = registry.create(request.require("grant_type"), context)
    grant.check_client(client)
    try:
        plan = await grant.validate(request, client)
        response = await grant.issue(plan)
    except ReusedRefreshTokenError as reused:
        # RFC 9700 §4.14.2: a replayed refresh token ends its whole family.
        await context.grants.revoke_family(reused.family, reason="refresh_token_reuse")
        if reused.audit is not None:
            context.audit(reused.audit)
        raise
    except ReusedAuthorizationCodeError as reused:
        # RFC 6749 §4.1.2: a code used twice ends what its first use issued.
        await context.codes.revoke_redeemed(reused.code.id)
        raise
    except OAuth2Error as refused:
        if refused.audit is not None:
            context.audit(refused.audit)
        raise
    context.audit(_issued(grant.grant_type, plan, response))
    return response


def _issued(grant_type: str, plan: Plan, response: TokenResponse) -> AuditEvent:
    access = response.access_token
    user = None if plan.user is None else plan.user.id
    if grant_type == "refresh_token":
        fields = {"jti": access.jti, "sid": access.sid, "client": plan.client.id, "user": user}
        return AuditEvent("token_refreshed", fields)
    fields = {
        "grant_type": grant_type,
        "jti": access.jti,
        "sid": access.sid,
        "client": plan.client.id,
        "user": user,
    }
    return AuditEvent("token_issued", fields)
