"""Finding the record behind a token string (RFC 7009 revocation, RFC 7662 introspection).

An access token is ours only if its signature verifies under one of our keys;
a refresh token is found by its hash. Anything else is unknown.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from dataclasses import dataclass

from joserfc import jws
from joserfc.errors import JoseError
from sqlalchemy.ext.asyncio import AsyncSession

from portcullis_auth.db.models import AccessToken
from portcullis_auth.keys.keyring import KeyRing
from portcullis_auth.records import FoundRefreshToken
from portcullis_auth.repositories.sql_token_store import SqlTokenStore
from portcullis_auth.repositories.tokens import TokenRepository
from portcullis_auth.security.secrets import hash_secret
from portcullis_shared.verifier import MAX_HEADER_BYTES, MAX_TOKEN_BYTES


@dataclass(frozen=True, slots=True)
class FoundAccessToken:
    record: AccessToken
    claims: dict[str, object]

    @property
    def client_id(self) -> str:
        return self.record.client_id


FoundToken = FoundAccessToken | FoundRefreshToken


def owner_of(found: FoundToken) -> str:
    """The client the token was issued to."""
    return found.client_id if isinstance(found, FoundAccessToken) else found.family.client_id


class TokenLookup:
    def __init__(self, session: AsyncSession, keyring: KeyRing) -> None:
        self._tokens = TokenRepository(session)
        self._refresh_tokens = SqlTokenStore(session)
        self._keyring = keyring

    async def find(self, token: str) -> FoundToken | None:
        if len(token) > MAX_TOKEN_BYTES:
            return None
        if token.count(".") == 2:
            return await self._find_access_token(token)
        return await self._refresh_tokens.find_refresh_token(hash_secret(token))

    async def _find_access_token(self, token: str) -> FoundAccessToken | None:
        segment = token.split(".", 1)[0]
        if len(segment) > MAX_HEADER_BYTES:
            return None
        try:
            header = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
            kid = header["kid"]
            key = await self._keyring.verification_key(kid) if isinstance(kid, str) else None
            if key is None:
                return None
            verified = jws.deserialize_compact(token, key.private_key, algorithms=[key.algorithm])
            claims = json.loads(verified.payload)
            record = await self._tokens.get_access_token(uuid.UUID(str(claims["jti"])))
        except (
            JoseError,
            ValueError,
            TypeError,
            KeyError,
            binascii.Error,
            UnicodeDecodeError,
            RecursionError,
        ):
            return None
        return None if record is None else FoundAccessToken(record, claims)
