"""Who a verified access token speaks for."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from portcullis_shared.claims import AccessTokenClaims


@dataclass(frozen=True, slots=True)
class Principal:
    """A user (through a client) or a client on its own, with the token's scopes."""

    subject: str
    client_id: str
    scopes: frozenset[str]
    token_id: str
    """The token's `jti`."""
    grant_id: str
    """The token's `sid`: its refresh family or personal access token."""
    issued_at: int
    expires_at: int

    @classmethod
    def from_claims(cls, claims: AccessTokenClaims) -> Principal:
        return cls(
            subject=claims.sub,
            client_id=claims.client_id,
            scopes=claims.scopes,
            token_id=claims.jti,
            grant_id=claims.sid,
            issued_at=claims.iat,
            expires_at=claims.exp,
        )

    @property
    def is_client(self) -> bool:
        """The token speaks for a client (client credentials), not a user."""
        return self.subject == self.client_id

    @property
    def user_id(self) -> uuid.UUID | None:
        if self.is_client:
            return None
        try:
            return uuid.UUID(self.subject)
        except ValueError:
            return None

    def can(self, scope: str) -> bool:
        return scope in self.scopes
