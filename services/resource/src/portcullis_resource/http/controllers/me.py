"""GET /api/me: who the token speaks for."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, get
from litestar.datastructures import State

from portcullis_resource.http.schemas import Me
from portcullis_shared.guards import current_principal
from portcullis_shared.principal import Principal


class MeController(Controller):
    @get("/api/me")
    async def me(self, request: Request[Principal, Any, State]) -> Me:
        principal = current_principal(request)
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
