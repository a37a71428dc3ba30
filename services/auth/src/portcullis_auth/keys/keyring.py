"""The signing keys in memory: which one signs, and which are published.

The signing key is the newest key whose `activates_at` has passed, worked out
when read, so a rotation needs no job: `keys rotate` schedules a key far
enough ahead that every JWKS cache has seen it before it signs. A key leaves
the JWKS once every token it can have signed has expired.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

import msgspec
from joserfc.jwk import ECKey, OKPKey, RSAKey
from joserfc.jws import JWSRegistry
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from portcullis_auth.db.models import SigningKey, utcnow
from portcullis_auth.keys.sealing import KeySealer
from portcullis_auth.repositories.keys import SigningKeyRepository
from portcullis_shared.claims import ACCESS_TOKEN_TYPE
from portcullis_shared.errors import InvalidTokenError

PrivateKey = RSAKey | ECKey | OKPKey

logger = logging.getLogger("portcullis.auth")

RELOAD_SECONDS = 30.0
"""Keys this old are read again in the background while they keep serving."""
MAX_KEY_AGE = 50.0
"""Keys this old (after a quiet spell, with no request to start a background read)
are read again before they serve. Rotation schedules a new key a JWKS cache lifetime
and 60 s ahead, so this must stay under 60 s."""


class JWSAlgorithm(Protocol):
    """What we use of a joserfc JWS algorithm."""

    def sign(self, msg: bytes, key: Any) -> bytes: ...


@dataclass(frozen=True, slots=True)
class LoadedKey:
    kid: str
    algorithm: str
    activates_at: datetime
    public_jwk: dict[str, Any]
    private_key: PrivateKey
    header_segment: bytes = field(init=False, repr=False)
    """The base64url JOSE header of every access token this key signs."""
    jws_algorithm: JWSAlgorithm = field(init=False, repr=False)

    def __post_init__(self) -> None:
        header = {"alg": self.algorithm, "kid": self.kid, "typ": ACCESS_TOKEN_TYPE}
        object.__setattr__(self, "header_segment", _b64url(_compact_json(header)))
        object.__setattr__(
            self, "jws_algorithm", JWSRegistry(algorithms=[self.algorithm]).get_alg(self.algorithm)
        )

    def sign_access_token(self, claims: dict[str, Any]) -> str:
        """An RFC 9068 access token: a compact JWS, header `{alg, kid, typ: at+jwt}`.

        What `joserfc.jwt.encode` makes, without building and checking the same header
        again for every token (its header and claim checks cost a fifth as much as the
        RSA signature). The signature is joserfc's.
        """
        signing_input = self.header_segment + b"." + _b64url(_compact_json(claims))
        signature = _b64url(self.jws_algorithm.sign(signing_input, self.private_key))
        return (signing_input + b"." + signature).decode("ascii")


def _b64url(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def _compact_json(value: dict[str, Any]) -> bytes:
    return msgspec.json.encode(value)  # what json.dumps gives with (",", ":"), UTF-8


class NoSigningKeyError(Exception):
    """No key has activated yet: run `portcullis install` or `portcullis keys generate`."""


def import_private_key(algorithm: str, pem: bytes) -> PrivateKey:
    if algorithm == "RS256":
        return RSAKey.import_key(pem)
    if algorithm == "ES256":
        return ECKey.import_key(pem)
    return OKPKey.import_key(pem)


def retired(
    keys: Sequence[SigningKey | LoadedKey], index: int, now: datetime, max_token_ttl: int
) -> bool:
    """A key is retired once a newer key took over longer ago than any token lives."""
    for newer in keys[index + 1 :]:
        if newer.activates_at <= now - timedelta(seconds=max_token_ttl):
            return True
    return False


class KeyRing:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        sealer: KeySealer,
        *,
        max_token_ttl: int,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._sealer = sealer
        self._max_token_ttl = max_token_ttl
        self._keys: list[LoadedKey] = []
        self._loaded_at = float("-inf")
        """When the keys in hand began to be read (monotonic)."""
        self._retry_at = float("-inf")
        """No new read before this, after one failed."""
        self._lock = asyncio.Lock()
        self._reloading: asyncio.Task[None] | None = None
        self._jwks_cache: tuple[float, bytes] | None = None

    async def reload(self) -> None:
        started = time.monotonic()
        async with self._sessionmaker() as session:
            rows = await SigningKeyRepository(session).list()
        if started < self._loaded_at:
            return  # a read that began later has already finished
        loaded = []
        for row in rows:
            known = next((k for k in self._keys if k.kid == row.kid), None)
            if known is None:
                pem = self._sealer.unseal(row.sealed_private_key, row.kid)
                known = LoadedKey(
                    kid=row.kid,
                    algorithm=row.algorithm,
                    activates_at=row.activates_at,
                    public_jwk=row.public_jwk,
                    private_key=import_private_key(row.algorithm, pem),
                )
            loaded.append(known)
        self._keys = loaded
        self._loaded_at = started
        self._jwks_cache = None

    async def _fresh_keys(self) -> list[LoadedKey]:
        """The keys: read again in the background once `RELOAD_SECONDS` old, and waited
        for only with none loaded or once `MAX_KEY_AGE` old (after a quiet spell, or
        background reads that failed). After a failed read, the keys in hand serve
        5 s more before the next try.

        Under load no request waits for the read. That matters: a request holding a
        pooled database connection must not wait for another, or with every
        connection so held the read waits for the pool until it times out, and so
        does every request.
        """
        if not self._keys:
            async with self._lock:
                if not self._keys:
                    await self.reload()
            return self._keys
        now = time.monotonic()
        age = now - self._loaded_at
        if now < self._retry_at:
            pass  # the last read failed: keep serving these a little longer
        elif age >= MAX_KEY_AGE:
            async with self._lock:
                if time.monotonic() - self._loaded_at >= MAX_KEY_AGE:
                    await self._read_or_retry_later()
        elif age >= RELOAD_SECONDS and (self._reloading is None or self._reloading.done()):
            self._reloading = asyncio.create_task(self._read_or_retry_later())
        return self._keys

    async def _read_or_retry_later(self) -> None:
        """Read the keys; when that fails, keep the ones in hand (the JWKS is still served
        with the database down) and try again in 5 s."""
        try:
            await self.reload()
        except Exception as exc:  # noqa: BLE001 - keep serving what we have
            logger.warning("signing keys not read again: %s", type(exc).__name__)
            self._retry_at = time.monotonic() + 5

    async def signing_key(self) -> LoadedKey:
        now = utcnow()
        active = [key for key in await self._fresh_keys() if key.activates_at <= now]
        if not active:
            raise NoSigningKeyError(
                "no active signing key: run `portcullis install` or `portcullis keys generate`"
            )
        return active[-1]

    async def verification_key(self, kid: str) -> LoadedKey | None:
        """The key with this kid, for checking our own tokens."""
        for key in await self._fresh_keys():
            if key.kid == kid:
                return key
        return None

    async def get_key(self, kid: str) -> tuple[PrivateKey, str | None]:
        """`KeySource` for the shared verifier: our own keys, no HTTP round trip."""
        key = await self.verification_key(kid)
        if key is None:
            raise InvalidTokenError("unknown signing key")
        return key.private_key, key.algorithm

    async def jwks_json(self) -> bytes:
        """The JWKS document: public keys only, unique kids, retired keys left out."""
        keys = await self._fresh_keys()
        now_mono = time.monotonic()
        if self._jwks_cache is not None and now_mono - self._jwks_cache[0] < 1.0:
            return self._jwks_cache[1]
        now = utcnow()
        published = [
            {**key.public_jwk, "kid": key.kid, "alg": key.algorithm, "use": "sig"}
            for index, key in enumerate(keys)
            if not retired(keys, index, now, self._max_token_ttl)
        ]
        document = json.dumps({"keys": published}, separators=(",", ":")).encode()
        self._jwks_cache = (now_mono, document)
        return document
