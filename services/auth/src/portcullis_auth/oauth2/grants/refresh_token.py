"""Refresh token grant (RFC 6749 §6) with rotation and reuse detection (RFC 9700 §4.14.2).

Each use rotates the token. A used token presented again by its client
within the grace window, while its successor is still unused, is only
refused (a retry after a lost response). Any other repeat is reuse: the
whole family is revoked. A failed request never uses a token up.
"""

from __future__ import annotations

from datetime import timedelta

from portcullis_auth import events
from portcullis_auth.db.models import Grant as GrantRow
from portcullis_auth.db.models import OAuthClient, RefreshToken, User, utcnow
from portcullis_auth.oauth2.errors import InvalidGrantError, InvalidScopeError
from portcullis_auth.oauth2.grants.base import Grant
from portcullis_auth.oauth2.request import TokenRequest
from portcullis_auth.oauth2.scopes import parse_requested_scope, resolve_audience
from portcullis_auth.services.tokens import TokenResponse
from portcullis_shared.scopes import format_scope

_INVALID = "the refresh token is invalid, expired or revoked"


class RefreshTokenGrant(Grant):
    grant_type = "refresh_token"

    async def issue(self, request: TokenRequest, client: OAuthClient) -> TokenResponse:
        presented = request.require("refresh_token")
        requested = parse_requested_scope(request.get("scope"), self.context.scopes)
        found = await self.context.tokens.find_refresh_token(presented)
        if found is None:
            raise InvalidGrantError(_INVALID)
        token, grant, user = found
        if grant.client_id != client.id:
            # §6: bound to its client. Not used up, and no family revoked:
            # another client could otherwise end a grant it does not own.
            raise InvalidGrantError(_INVALID)
        if token.revoked_at is not None or grant.revoked_at is not None:
            raise InvalidGrantError(_INVALID)
        if token.used_at is not None:
            await self._refuse_repeat(token, grant)
        now = utcnow()
        if token.expires_at <= now or grant.expires_at <= now:
            raise InvalidGrantError(_INVALID)

        self._still_allowed(client, grant, user)
        granted = frozenset(grant.scopes)
        scopes = granted if requested is None else requested
        if not scopes <= granted:
            raise InvalidScopeError(
                f"scope cannot widen on refresh: {format_scope(scopes - granted)} not granted"
            )
        audience = resolve_audience(request.get("resource") or grant.audience, client)

        rotated = await self.context.tokens.rotate(
            token, grant, client=client, user=user, scopes=scopes, audience=audience
        )
        if rotated is None:
            # A concurrent request rotated it first: a repeat inside the window.
            raise InvalidGrantError("the refresh token was already used")
        access, successor = rotated
        events.emit(
            "token_refreshed",
            jti=access.jti,
            sid=grant.id,
            client=client.id,
            user=grant.user_id,
        )
        return TokenResponse(access_token=access, refresh_token=successor)

    async def _refuse_repeat(self, token: RefreshToken, grant: GrantRow) -> None:
        assert token.used_at is not None
        grace = timedelta(seconds=self.context.settings.refresh_grace)
        if utcnow() - token.used_at <= grace and await self.context.tokens.successor_is_unused(
            token
        ):
            events.emit("refresh_token_repeated", sid=grant.id, client=grant.client_id)
            raise InvalidGrantError("the refresh token was already used")
        await self.context.tokens.revocations.revoke_grant(grant, reason="refresh_token_reuse")
        raise InvalidGrantError(_INVALID, keep_changes=True)

    def _still_allowed(self, client: OAuthClient, grant: GrantRow, user: User | None) -> None:
        """Every refresh checks again that user and client may still hold this grant."""
        registry = self.context.scopes
        if grant.grant_type not in client.grant_types:
            raise InvalidGrantError("the client may no longer use the grant this token came from")
        if not set(grant.scopes) <= set(client.scopes) & registry.names:
            raise InvalidGrantError("the client is no longer allowed this grant's scopes")
        if grant.user_id is None:
            return
        if user is None or user.disabled_at is not None:
            raise InvalidGrantError(_INVALID)
        if not user.is_admin and any(registry.is_privileged(s) for s in grant.scopes):
            raise InvalidGrantError("the user no longer holds this grant's scopes")
