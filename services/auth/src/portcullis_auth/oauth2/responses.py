"""The token endpoint's successful response (RFC 6749 §5.1)."""

from __future__ import annotations

from dataclasses import dataclass

from portcullis_auth.records import IssuedAccessToken
from portcullis_shared.scopes import format_scope


@dataclass(frozen=True, slots=True)
class TokenResponse:
    access_token: IssuedAccessToken
    refresh_token: str | None = None

    def to_dict(self) -> dict[str, object]:
        body: dict[str, object] = {
            "access_token": self.access_token.token,
            "token_type": "Bearer",
            "expires_in": self.access_token.expires_in,
            "scope": format_scope(self.access_token.scopes),
        }
        if self.refresh_token is not None:
            body["refresh_token"] = self.refresh_token
        return body
