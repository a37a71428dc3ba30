"""Creating and rotating signing keys (the `portcullis keys` commands use this)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from joserfc.jwk import ECKey, OKPKey, RSAKey
from sqlalchemy.ext.asyncio import AsyncSession

from portcullis_auth.db.models import SigningKey, utcnow
from portcullis_auth.keys.keyring import MAX_KEY_AGE, PrivateKey, retired
from portcullis_auth.keys.sealing import KeySealer
from portcullis_auth.repositories.keys import SigningKeyRepository
from portcullis_shared.jwks import MIN_TTL as JWKS_MIN_TTL

# Rotation waits this long past the JWKS max-age, so every cache has the new
# key before anything is signed with it.
ROTATION_MARGIN = timedelta(seconds=60)


def jwks_cache_lifetime(jwks_max_age: int) -> int:
    """How long a JWKS cache may keep the document, seconds: its max-age, but never less
    than the floor every `JWKSCache` keeps it (`portcullis_shared.jwks.MIN_TTL`)."""
    return max(jwks_max_age, math.ceil(JWKS_MIN_TTL))


def generate_private_key(algorithm: str) -> PrivateKey:
    if algorithm == "RS256":
        return RSAKey.generate_key(2048, private=True)
    if algorithm == "ES256":
        return ECKey.generate_key("P-256", private=True)
    if algorithm == "EdDSA":
        return OKPKey.generate_key("Ed25519", private=True)
    raise ValueError(f"unsupported signing algorithm: {algorithm}")


@dataclass(frozen=True, slots=True)
class KeyInfo:
    kid: str
    algorithm: str
    created_at: datetime
    activates_at: datetime
    state: str
    """pending, signing, published (verifies older tokens) or retired."""


class SigningKeyService:
    def __init__(self, session: AsyncSession, sealer: KeySealer) -> None:
        self._keys = SigningKeyRepository(session)
        self._sealer = sealer

    async def generate(self, algorithm: str, activates_at: datetime | None = None) -> SigningKey:
        private_key = generate_private_key(algorithm)
        kid = private_key.thumbprint()
        now = utcnow()
        pem = private_key.as_pem(private=True)
        return await self._keys.add(
            SigningKey(
                kid=kid,
                algorithm=algorithm,
                public_jwk=private_key.as_dict(private=False),
                sealed_private_key=self._sealer.seal(pem, kid),
                created_at=now,
                activates_at=activates_at or now,
            )
        )

    async def rotate(
        self, algorithm: str, jwks_max_age: int, activate_in: int | None = None
    ) -> SigningKey:
        """Add a key that starts signing once every JWKS cache can have seen it: after
        `activate_in` seconds (default the cache lifetime and a margin). Never sooner than
        every auth process (or worker) has read its keys again, `MAX_KEY_AGE` at most,
        and then one cache lifetime, how long a cache may keep a JWKS fetched just before:
        the max-age, or the caches' 30 s floor when the max-age is shorter."""
        kept = jwks_cache_lifetime(jwks_max_age)
        delay = (
            timedelta(seconds=kept) + ROTATION_MARGIN
            if activate_in is None
            else timedelta(seconds=activate_in)
        )
        least = kept + math.ceil(MAX_KEY_AGE)
        if delay < timedelta(seconds=least):
            raise ValueError(
                f"a new key must be published at least {least} s before it signs: "
                f"{math.ceil(MAX_KEY_AGE)} s until every auth process has read it, then "
                f"{kept} s that a JWKS cache may keep it (the JWKS max-age, {jwks_max_age} s, "
                f"and never less than {math.ceil(JWKS_MIN_TTL)} s)"
            )
        return await self.generate(algorithm, activates_at=utcnow() + delay)

    async def reencrypt(self) -> int:
        """Seal every signing key again under the current secret key (each opened under
        the current or the previous one); how many there were."""
        keys = await self._keys.list()
        for key in keys:
            key.sealed_private_key = self._sealer.reseal(key.sealed_private_key, key.kid)
        await self._keys.flush()
        return len(keys)

    async def has_keys(self) -> bool:
        return bool(await self._keys.list())

    async def describe(self, max_token_ttl: int) -> list[KeyInfo]:
        keys = await self._keys.list()
        now = utcnow()
        active = [key for key in keys if key.activates_at <= now]
        signer = active[-1].kid if active else None
        infos = []
        for index, key in enumerate(keys):
            if key.kid == signer:
                state = "signing"
            elif key.activates_at > now:
                state = "pending"
            elif retired(keys, index, now, max_token_ttl):
                state = "retired"
            else:
                state = "published"
            infos.append(KeyInfo(key.kid, key.algorithm, key.created_at, key.activates_at, state))
        return infos
