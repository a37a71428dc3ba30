"""Minting tokens the guard trusts, for your tests (Passport's `actingAs`).

    tokens = TestTokens(issuer="https://auth.test", audience="orders")
    app = Litestar(..., plugins=[tokens.guard()])
    headers = tokens.acting_as(user_id, scopes=["read-orders"])
    headers = tokens.acting_as_client("billing", scopes=["read-orders"])

No auth service runs: the keys live in memory, and so does the revocation
list (`tokens.revocations.revoke_token(...)` revokes).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable
from typing import Any

from joserfc import jwt
from joserfc.jwk import RSAKey

from portcullis_shared.claims import ACCESS_TOKEN_TYPE
from portcullis_shared.jwks import StaticKeySource
from portcullis_shared.plugin import GuardConfig, PortcullisGuard
from portcullis_shared.revocation import MemoryRevocationList


class TestTokens:
    __test__ = False  # not a pytest test class

    def __init__(self, *, issuer: str = "https://auth.test", audience: str = "test") -> None:
        self.issuer = issuer
        self.audience = audience
        self.key = RSAKey.generate_key(2048, private=True)
        self.kid = self.key.thumbprint()
        self.revocations = MemoryRevocationList()

    @property
    def jwks(self) -> dict[str, Any]:
        return {
            "keys": [
                {**self.key.as_dict(private=False), "kid": self.kid, "alg": "RS256", "use": "sig"}
            ]
        }

    def guard(self) -> PortcullisGuard:
        return PortcullisGuard(
            GuardConfig(issuer=self.issuer, audience=self.audience),
            keys=StaticKeySource(self.jwks),
            revocations=self.revocations,
        )

    def token(
        self,
        *,
        subject: str,
        client_id: str,
        scopes: Iterable[str] = (),
        ttl: int = 900,
        **claims: Any,
    ) -> str:
        now = int(time.time())
        payload: dict[str, Any] = {
            "iss": self.issuer,
            "sub": subject,
            "aud": self.audience,
            "exp": now + ttl,
            "iat": now,
            "jti": str(uuid.uuid4()),
            "client_id": client_id,
            "scope": " ".join(sorted(scopes)),
            "sid": str(uuid.uuid4()),
            **claims,
        }
        header = {"alg": "RS256", "kid": self.kid, "typ": ACCESS_TOKEN_TYPE}
        return jwt.encode(header, payload, self.key, algorithms=["RS256"])

    def acting_as(
        self, user_id: uuid.UUID | str, scopes: Iterable[str] = (), client_id: str = "test-client"
    ) -> dict[str, str]:
        """Headers of a request made by a user through a first-party client."""
        token = self.token(subject=str(user_id), client_id=client_id, scopes=scopes)
        return {"Authorization": f"Bearer {token}"}

    def acting_as_client(self, client_id: str, scopes: Iterable[str] = ()) -> dict[str, str]:
        """Headers of a request made by a client on its own (client credentials)."""
        token = self.token(subject=client_id, client_id=client_id, scopes=scopes)
        return {"Authorization": f"Bearer {token}"}
