"""Verifying access tokens (RFC 9068 §4, RFC 8725) without calling the auth service.

A JOSE library checks the signature only; everything else is checked here:
the algorithm comes from configuration (never from the token), `typ` must be
`at+jwt`, header parameters that point at other keys (`jku`, `x5u`, `jwk`,
`x5c`) and any `crit` are refused, every claim is required, `iss` and `aud`
must match, and time claims hold within a leeway of at most 60 s. Other header
members are ignored (RFC 7515 §4); `b64` is never honoured, so the signature
always covers the two segments as sent. Each segment is read in its one
canonical base64url spelling. Every malformed input ends as
`InvalidTokenError`, never as anything else.
"""

from __future__ import annotations

import binascii
import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable, Collection

import msgspec
from joserfc.errors import JoseError
from joserfc.jwa import JWSAlgModel
from joserfc.jws import JWSRegistry
from joserfc.util import urlsafe_b64decode

from portcullis_shared.claims import ACCESS_TOKEN_TYPE, AccessTokenClaims
from portcullis_shared.errors import InvalidTokenError
from portcullis_shared.jwks import KeySource

ASYMMETRIC_ALGORITHMS = ("RS256", "ES256", "EdDSA")
MAX_TOKEN_BYTES = 8192
MAX_HEADER_BYTES = 1024
MAX_LEEWAY = 60
VERIFIED_CACHE_SIZE = 10_000
VERIFIED_CACHE_SECONDS = 60.0
_FORBIDDEN_HEADERS = frozenset({"jku", "x5u", "jwk", "x5c", "crit"})
_UNDECODABLE = (msgspec.DecodeError, UnicodeDecodeError, RecursionError)
"""What msgspec raises for bytes that are no JSON: invalid UTF-8 inside a string is a
UnicodeDecodeError, not a DecodeError; JSON nested too deep, a RecursionError."""


def _b64decode(segment: str) -> bytes:
    """Base64url without padding, in its one canonical spelling (RFC 7515 §2): another
    spelling of the same bytes would make another token of the same signature."""
    if not segment:
        raise InvalidTokenError("malformed token")
    try:
        return urlsafe_b64decode(segment.encode("ascii"))
    except (binascii.Error, ValueError):
        raise InvalidTokenError("malformed token") from None


class TokenVerifier:
    def __init__(
        self,
        keys: KeySource,
        *,
        issuer: str,
        audience: str | Collection[str],
        algorithms: Collection[str] = ASYMMETRIC_ALGORITHMS,
        leeway: int = 30,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """`clock`: the wall-clock time that `exp`, `iat` and `nbf` are checked against and
        that ends the verified-token cache's entries; a parameter so that tests can move it
        on instead of waiting."""
        unsupported = set(algorithms) - set(ASYMMETRIC_ALGORITHMS)
        if unsupported or not algorithms:
            raise ValueError(f"allowed algorithms must be among {', '.join(ASYMMETRIC_ALGORITHMS)}")
        if not 0 <= leeway <= MAX_LEEWAY:
            raise ValueError(f"leeway must be between 0 and {MAX_LEEWAY} seconds")
        self._keys = keys
        self._issuer = issuer
        self._audiences = frozenset((audience,) if isinstance(audience, str) else audience)
        """The `aud` values accepted: the service's own name (or names)."""
        if not self._audiences:
            raise ValueError("a verifier needs the audience its tokens must name")
        self._signatures: dict[str, JWSAlgModel] = {
            name: JWSRegistry.algorithms[name] for name in algorithms
        }
        """The library's model of each allowed algorithm: it knows the keys that fit it and
        checks signatures."""
        self._leeway = leeway
        self._clock = clock
        self._claims_decoder = msgspec.json.Decoder(AccessTokenClaims)
        self._header_decoder = msgspec.json.Decoder()
        # Tokens whose signature and claims already checked out: a repeat costs a
        # dict lookup, not a signature verification. An entry lasts until the token
        # expires or VERIFIED_CACHE_SECONDS pass (so a key withdrawn from the JWKS
        # stops counting soon); revocation is checked on every request elsewhere.
        # Kept by the token's SHA-256, a tenth of the token's size.
        self._verified: OrderedDict[bytes, tuple[AccessTokenClaims, float]] = OrderedDict()

    async def verify(self, token: str) -> AccessTokenClaims:
        if len(token) > MAX_TOKEN_BYTES or not token.isascii():
            raise InvalidTokenError("malformed token")
        digest = hashlib.sha256(token.encode("ascii")).digest()
        cached = self._verified.get(digest)
        if cached is not None:
            claims, good_until = cached
            if self._clock() < good_until:
                return claims
            del self._verified[digest]
        claims = await self._verify_uncached(token)
        now = self._clock()
        self._verified[digest] = (
            claims,
            min(claims.exp + self._leeway, now + VERIFIED_CACHE_SECONDS),
        )
        if len(self._verified) > VERIFIED_CACHE_SIZE:
            self._verified.popitem(last=False)
        return claims

    async def _verify_uncached(self, token: str) -> AccessTokenClaims:
        parts = token.split(".")
        if len(parts) != 3:
            raise InvalidTokenError("malformed token")
        if len(parts[0]) > MAX_HEADER_BYTES:
            raise InvalidTokenError("token header too large")
        header = self._check_header(_b64decode(parts[0]))
        alg, kid = header["alg"], header["kid"]
        key, pinned_alg = await self._keys.get_key(kid)
        algorithm = self._signatures[alg]
        try:
            algorithm.check_key(key)  # its type, its curve (P-256 for ES256), `use` and `alg`
        except JoseError:
            raise InvalidTokenError("key does not match the token's algorithm") from None
        if pinned_alg is not None and pinned_alg != alg:
            raise InvalidTokenError("key does not match the token's algorithm")
        # The header is parsed and checked above, the payload below: the library only
        # checks the signature.
        payload, signature = _b64decode(parts[1]), _b64decode(parts[2])
        signing_input = token[: len(parts[0]) + 1 + len(parts[1])].encode("ascii")
        try:
            valid = algorithm.verify(signing_input, signature, key)
        except (JoseError, ValueError, TypeError):
            valid = False
        if not valid:
            raise InvalidTokenError("invalid signature")
        try:
            claims = self._claims_decoder.decode(payload)
        except _UNDECODABLE:
            raise InvalidTokenError("missing or malformed claims") from None
        self._check_claims(claims)
        return claims

    def _check_header(self, raw: bytes) -> dict[str, str]:
        try:
            header = self._header_decoder.decode(raw)
        except _UNDECODABLE:
            raise InvalidTokenError("malformed token header") from None
        if not isinstance(header, dict):
            raise InvalidTokenError("malformed token header")
        alg, kid, typ = header.get("alg"), header.get("kid"), header.get("typ")
        if not isinstance(alg, str) or alg not in self._signatures:
            raise InvalidTokenError("algorithm not allowed")
        if not isinstance(kid, str) or not kid or len(kid) > 128:
            raise InvalidTokenError("missing or malformed kid")
        # RFC 9068 §4: typ is at+jwt (or application/at+jwt), compared case-insensitively.
        if (
            not isinstance(typ, str)
            or typ.lower().removeprefix("application/") != ACCESS_TOKEN_TYPE
        ):
            raise InvalidTokenError("not an access token")
        if _FORBIDDEN_HEADERS & header.keys():
            raise InvalidTokenError("unsupported token header")
        return {"alg": alg, "kid": kid}

    def _check_claims(self, claims: AccessTokenClaims) -> None:
        now = int(self._clock())
        if claims.iss != self._issuer:
            raise InvalidTokenError("wrong issuer")
        if claims.aud not in self._audiences:
            raise InvalidTokenError("token not meant for this service")
        if claims.exp + self._leeway <= now:
            raise InvalidTokenError("token expired")
        if claims.iat - self._leeway > now:
            raise InvalidTokenError("token issued in the future")
        if claims.nbf is not None and claims.nbf - self._leeway > now:
            raise InvalidTokenError("token not yet valid")
        if not (claims.sub and claims.jti and claims.client_id and claims.sid):
            raise InvalidTokenError("missing or malformed claims")
