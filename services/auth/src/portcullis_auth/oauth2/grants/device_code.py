"""Device authorization grant (RFC 8628 §3.4, §3.5): the device polls until its user answers.

While the user has not answered the device hears `authorization_pending`; polling
sooner than the interval answers `slow_down` and raises the interval by five
seconds; a denial is `access_denied`, an expired code `expired_token`. An
approval issues tokens once. Each poll is noted, even when its answer is an
error, so these errors keep the request's changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from portcullis_auth.oauth2.device import GRANT_TYPE
from portcullis_auth.oauth2.errors import (
    AccessDeniedError,
    AuthorizationPendingError,
    ExpiredTokenError,
    InvalidGrantError,
    SlowDownError,
)
from portcullis_auth.oauth2.grants.base import Grant, Plan, check_still_allowed
from portcullis_auth.oauth2.request import TokenRequest
from portcullis_auth.oauth2.responses import TokenResponse
from portcullis_auth.records import Client, DeviceAuthorization


@dataclass(frozen=True, slots=True)
class DevicePlan(Plan):
    authorization: DeviceAuthorization


class DeviceCodeGrant(Grant[DevicePlan]):
    grant_type = GRANT_TYPE

    async def validate(self, request: TokenRequest, client: Client) -> DevicePlan:
        devices = self.context.devices
        found = await devices.find_device_code(request.require("device_code"))
        if found is None or found.client_id != client.id:
            raise InvalidGrantError("the device code is invalid")
        if found.expires_at <= datetime.now(UTC):
            raise ExpiredTokenError("the device code has expired; start over")
        if found.status == "issued":
            raise InvalidGrantError("the device code was already used")
        if not await devices.record_poll(found.id):
            raise SlowDownError("polling too fast: wait the interval", keep_changes=True)
        if found.status == "denied":
            raise AccessDeniedError("the user denied the request", keep_changes=True)
        if found.status != "approved" or found.user is None:
            raise AuthorizationPendingError("the user has not answered yet", keep_changes=True)
        check_still_allowed(client, self.grant_type, found.scopes, found.user, self.context.scopes)
        return DevicePlan(
            client=client,
            user=found.user,
            scopes=frozenset(found.scopes),
            audience=found.audience,
            authorization=found,
        )

    async def issue(self, plan: DevicePlan) -> TokenResponse:
        issuer = self.context.issuer
        family_id, refresh_token = await issuer.start_family(
            client=plan.client,
            user=plan.user,
            grant_type=self.grant_type,
            scopes=plan.scopes,
            audience=plan.audience,
            refresh="refresh_token" in plan.client.grant_types,
        )
        if not await self.context.devices.mark_issued(plan.authorization.id, family_id):
            raise InvalidGrantError("the device code was already used")
        access = await issuer.issue_access_token(
            client=plan.client,
            user=plan.user,
            scopes=plan.scopes,
            audience=plan.audience,
            sid=family_id,
        )
        return TokenResponse(access_token=access, refresh_token=refresh_token)
