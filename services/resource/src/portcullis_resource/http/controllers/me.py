"""GET /api/me: who the token speaks for."""

from __future__ import annotations

from litestar import Controller, get

from portcullis_resource.http.errors import GUARD_ERRORS
from portcullis_resource.http.schemas import Me
from portcullis_shared.dependencies import Injected
from portcullis_shared.openapi import answers, bearer_security
from portcullis_shared.principal import Principal


class MeController(Controller):
    @get("/api/me", security=bearer_security(), operation_class=answers(GUARD_ERRORS))
    async def me(self, principal: Injected[Principal]) -> Me:
        return Me(
            subject=principal.subject,
            user_id=principal.user_id,
            client_id=principal.client_id,
            is_client=principal.is_client,
            scopes=sorted(principal.scopes),
            token_id=principal.token_id,
            grant_id=principal.grant_id,
            expires_at=principal.expires_at,
        )
