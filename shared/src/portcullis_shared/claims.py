"""The access token claims (RFC 9068 §2.2), shared by issuer and verifier."""

from __future__ import annotations

import msgspec

ACCESS_TOKEN_TYPE = "at+jwt"  # noqa: S105 - a media type, not a secret
"""RFC 9068 §2.1: the `typ` header of every access token."""

REQUIRED_CLAIMS = ("iss", "sub", "aud", "exp", "iat", "jti", "client_id", "scope", "sid")


class AccessTokenClaims(msgspec.Struct, frozen=True, kw_only=True):
    """Claims of a Portcullis access token.

    `sub` is a user id (a UUID) or, for a client-credentials token, the client
    id: the token speaks for a client exactly when `sub == client_id`.
    `sid` names the grant: the refresh-token family or the personal access token.
    """

    iss: str
    sub: str
    aud: str
    exp: int
    iat: int
    jti: str
    client_id: str
    scope: str
    sid: str
    nbf: int | None = None

    @property
    def is_client_token(self) -> bool:
        return self.sub == self.client_id

    @property
    def scopes(self) -> frozenset[str]:
        return frozenset(self.scope.split()) if self.scope else frozenset()
