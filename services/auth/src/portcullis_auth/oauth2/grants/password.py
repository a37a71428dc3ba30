"""Resource owner password credentials grant (RFC 6749 §4.3).

Only for confidential clients allowed it. Unknown user and wrong password
give the same answer in the same time; repeated failures per (username,
client IP) back off with 429.
"""

from __future__ import annotations

from portcullis_auth import events
from portcullis_auth.db.models import OAuthClient
from portcullis_auth.oauth2.errors import InvalidGrantError, TooManyAttemptsError
from portcullis_auth.oauth2.grants.base import Grant
from portcullis_auth.oauth2.request import TokenRequest
from portcullis_auth.oauth2.scopes import parse_requested_scope, resolve_audience, resolve_scopes
from portcullis_auth.services.tokens import TokenResponse
from portcullis_auth.services.users import normalise_username


class PasswordGrant(Grant):
    grant_type = "password"
    confidential_only = True

    async def issue(self, request: TokenRequest, client: OAuthClient) -> TokenResponse:
        username = normalise_username(request.require("username"))
        password = request.require("password")
        requested = parse_requested_scope(request.get("scope"), self.context.scopes)
        audience = resolve_audience(request.get("resource"), client)

        throttle = self.context.throttle
        # Counted before the password is checked: parallel guesses all count.
        wait = await throttle.begin_attempt(username, request.client_ip)
        if wait > 0:
            raise TooManyAttemptsError(wait)
        user = await self.context.users.authenticate(
            username, password, caller_gone=request.caller_gone
        )
        if user is None:
            events.emit("login_failed", client=client.id)
            raise InvalidGrantError("invalid username or password")
        await throttle.succeeded(username, request.client_ip)

        scopes = resolve_scopes(requested, client, user, self.context.scopes)
        refresh_token = None
        sid = None
        if "refresh_token" in client.grant_types:
            grant, refresh_token = await self.context.tokens.start_grant(
                client=client,
                user=user,
                grant_type=self.grant_type,
                scopes=scopes,
                audience=audience,
            )
            sid = grant.id
        access = await self.context.tokens.issue_access_token(
            client=client, user=user, scopes=scopes, audience=audience, sid=sid
        )
        events.emit(
            "token_issued",
            grant_type=self.grant_type,
            jti=access.jti,
            sid=sid or access.jti,
            client=client.id,
            user=user.id,
        )
        return TokenResponse(access_token=access, refresh_token=refresh_token)
