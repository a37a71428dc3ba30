"""Refresh token grant (RFC 6749 §6) with rotation and reuse detection (RFC 9700 §4.14.2).

Each use rotates the token. A used token presented again by its client
within the grace window, while its successor is still unused, is only
refused (a retry after a lost response). Any other repeat is reuse: the
whole family is revoked. A failed request never uses a token up.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from portcullis_auth.oauth2.audit import AuditEvent
from portcullis_auth.oauth2.errors import (
    InvalidGrantError,
    InvalidScopeError,
    ReusedRefreshTokenError,
)
from portcullis_auth.oauth2.grants.base import Grant, Plan, check_still_allowed
from portcullis_auth.oauth2.request import TokenRequest
from portcullis_auth.oauth2.responses import TokenResponse
from portcullis_auth.oauth2.scopes import parse_requested_scope, resolve_audience
from portcullis_auth.records import Client, FoundRefreshToken
from portcullis_shared.scopes import format_scope

_INVALID = "the refresh token is invalid, expired or revoked"


@dataclass(frozen=True, slots=True)
class RefreshPlan(Plan):
    found: FoundRefreshToken


class RefreshTokenGrant(Grant[RefreshPlan]):
    grant_type = "refresh_token"

    async def validate(self, request: TokenRequest, client: Client) -> RefreshPlan:
        presented = request.require("refresh_token")
        requested = parse_requested_scope(request.get("scope"), self.context.scopes)
        found = await self.context.grants.find_refresh_token(presented)
        if found is None:
            raise InvalidGrantError(_INVALID)
        token, family = found.token, found.family
        if family.client_id != client.id:
            # §6: bound to its client. Not used up, and no family revoked:
            # another client could otherwise end a grant it does not own.
            raise InvalidGrantError(_INVALID)
        if token.revoked_at is not None or family.revoked_at is not None:
            raise InvalidGrantError(_INVALID)
        now = datetime.now(UTC)
        if token.used_at is not None:
            await self._refuse_repeat(found, now)
        if token.expires_at <= now or family.expires_at <= now:
            raise InvalidGrantError(_INVALID)

        self._still_allowed(client, found)
        granted = frozenset(family.scopes)
        scopes = granted if requested is None else requested
        if not scopes <= granted:
            raise InvalidScopeError(
                f"scope cannot widen on refresh: {format_scope(scopes - granted)} not granted"
            )
        audience = resolve_audience(request.get("resource") or family.audience, client)
        return RefreshPlan(
            client=client, user=found.user, scopes=scopes, audience=audience, found=found
        )

    async def issue(self, plan: RefreshPlan) -> TokenResponse:
        rotated = await self.context.issuer.rotate(
            plan.found, client=plan.client, scopes=plan.scopes, audience=plan.audience
        )
        if rotated is None:
            # A concurrent request rotated it first: a repeat inside the window.
            raise InvalidGrantError("the refresh token was already used")
        access, successor = rotated
        return TokenResponse(access_token=access, refresh_token=successor)

    async def _refuse_repeat(self, found: FoundRefreshToken, now: datetime) -> None:
        token, family = found.token, found.family
        assert token.used_at is not None
        grace = timedelta(seconds=self.context.refresh_grace)
        if now - token.used_at <= grace and await self.context.grants.successor_is_unused(token.id):
            raise InvalidGrantError(
                "the refresh token was already used",
                audit=AuditEvent(
                    "refresh_token_repeated", {"sid": family.id, "client": family.client_id}
                ),
            )
        raise ReusedRefreshTokenError(family)

    def _still_allowed(self, client: Client, found: FoundRefreshToken) -> None:
        """Every refresh checks again that user and client may still hold this grant."""
        family, user = found.family, found.user
        if family.user_id is not None and user is None:
            raise InvalidGrantError(_INVALID)  # the family's user is gone
        check_still_allowed(client, family.grant_type, family.scopes, user, self.context.scopes)
