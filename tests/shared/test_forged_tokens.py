"""docs/security.md, forged access tokens at a resource service, one attack at a time.

Each forged token differs from a genuine one (accepted by the same app, see
the controls) in one respect, and must be answered 401 `invalid_token`:
never a 500, never a 200. The app is a small Litestar app with the real
`PortcullisGuard`, its keys from a real JWKS server on loopback and its
revocation list in the real Redis.
"""

from __future__ import annotations

import hashlib
import hmac
import inspect
import json
import secrets
import string
import time
import uuid
from typing import Any

import pytest
import redis.asyncio as aioredis
from joserfc.jwk import ECKey, OKPKey
from litestar import Litestar
from litestar.testing import AsyncTestClient

from portcullis_shared.guards import client_only, scope, scopes, user_required
from portcullis_shared.jwks import StaticKeySource
from portcullis_shared.plugin import PortcullisGuard
from portcullis_shared.revocation import MemoryRevocationList, RevocationKeys
from tests.shared.conftest import (
    AUDIENCE,
    ISSUER,
    LEEWAY,
    REALM,
    SERVICE_CLIENT,
    USER_CLIENT,
    JWKSServer,
    SigningKey,
    access_claims,
    assert_invalid_token,
    b64url,
    b64url_decode,
    bearer,
    client_claims,
    compact_json,
    guard_config,
    guarded_app,
    header_for,
    jwks_of,
    mint,
    sign,
)

Client = AsyncTestClient[Litestar]
URLSAFE_ALPHABET = string.ascii_uppercase + string.ascii_lowercase + string.digits + "-_"
REQUIRED_CLAIMS = ["iss", "sub", "aud", "exp", "iat", "jti", "client_id", "scope", "sid"]


async def me(http: Client, token: str, scheme: str = "Bearer") -> Any:
    return await http.get("/api/me", headers=bearer(token, scheme))


# --- controls: what a genuine token gets -------------------------------------------------


async def test_genuine_user_token_is_accepted(http: Client, rsa_key: SigningKey) -> None:
    claims = access_claims(scope="read-posts write-posts")
    response = await me(http, mint(rsa_key, claims))
    assert response.status_code == 200, response.text
    assert response.json() == {
        "subject": claims["sub"],
        "client_id": USER_CLIENT,
        "scopes": ["read-posts", "write-posts"],
        "is_client": False,
        "user_id": claims["sub"],
        "token_id": claims["jti"],
        "grant_id": claims["sid"],
        "can_read": True,
        "can_write": True,
        "can_admin": False,
    }


async def test_genuine_client_token_is_accepted(http: Client, rsa_key: SigningKey) -> None:
    response = await me(http, mint(rsa_key, client_claims()))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["is_client"] is True
    assert body["user_id"] is None
    assert body["subject"] == body["client_id"] == SERVICE_CLIENT


@pytest.mark.parametrize("typ", ["at+jwt", "application/at+jwt", "AT+JWT"])
async def test_rfc9068_typ_spellings_are_accepted(
    http: Client, rsa_key: SigningKey, typ: str
) -> None:
    response = await me(http, mint(rsa_key, typ=typ))
    assert response.status_code == 200, response.text


# --- the header: algorithm and key ------------------------------------------------------


@pytest.mark.parametrize("alg", ["none", "None", "NONE"])
async def test_unsigned_alg_none_token_is_refused(
    http: Client, rsa_key: SigningKey, alg: str
) -> None:
    token = sign(header_for(rsa_key, alg=alg), access_claims(), None)
    assert token.endswith(".")
    assert_invalid_token(await me(http, token))


@pytest.mark.parametrize("form", ["pem", "pem-stripped", "der", "jwk-json"])
async def test_hs256_keyed_with_the_public_key_is_refused(
    http: Client, rsa_key: SigningKey, form: str
) -> None:
    """Key confusion: the RSA public key (which anyone can fetch) as an HMAC secret."""
    public = rsa_key.key.as_pem(private=False)
    secret = {
        "pem": public,
        "pem-stripped": public.strip(),
        "der": rsa_key.key.as_der(private=False),
        "jwk-json": json.dumps(rsa_key.public_jwk()).encode(),
    }[form]
    header = header_for(rsa_key, alg="HS256")
    signing_input = f"{b64url(compact_json(header))}.{b64url(compact_json(access_claims()))}"
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    assert_invalid_token(await me(http, f"{signing_input}.{b64url(mac)}"))


async def test_unknown_kid_is_refused(
    http: Client, rsa_key: SigningKey, jwks_server: JWKSServer
) -> None:
    token = sign(header_for(rsa_key, kid="no-such-key"), access_claims(), rsa_key)
    assert_invalid_token(await me(http, token))
    assert_invalid_token(await me(http, token))
    assert jwks_server.requests == 1  # the start-up fetch; the cooldown holds off the rest


async def test_missing_kid_is_refused(http: Client, rsa_key: SigningKey) -> None:
    token = sign(header_for(rsa_key, drop=["kid"]), access_claims(), rsa_key)
    assert_invalid_token(await me(http, token))


@pytest.mark.parametrize(
    "kid",
    [
        pytest.param(12345, id="integer"),
        pytest.param(None, id="null"),
        pytest.param(True, id="boolean"),
        pytest.param(["key-2025-01"], id="list-holding-the-real-kid"),
        pytest.param({"kid": "key-2025-01"}, id="object"),
        pytest.param("", id="empty"),
        pytest.param("k" * 200, id="200-chars"),
        pytest.param("k" * 10_240, id="10KB"),
        pytest.param("../../../etc/passwd", id="path"),
        pytest.param("key-2025-01\u0000", id="nul-suffix"),
        pytest.param("key-2025-01 ", id="space-suffix"),
    ],
)
async def test_odd_kid_is_refused(http: Client, rsa_key: SigningKey, kid: Any) -> None:
    token = sign(header_for(rsa_key, kid=kid), access_claims(), rsa_key)
    assert_invalid_token(await me(http, token))


@pytest.mark.parametrize("signer", ["genuine", "attacker"])
@pytest.mark.parametrize("member", ["jku", "x5u", "jwk", "x5c"])
async def test_key_pointing_headers_are_refused_and_never_fetched(
    http: Client,
    rsa_key: SigningKey,
    attacker_key: SigningKey,
    trap_server: JWKSServer,
    member: str,
    signer: str,
) -> None:
    """Keys come only from the configured JWKS URL; `jku`/`x5u` are never followed.

    Signed with the genuine key, the token shows the header alone is refused;
    signed by the attacker, that the attacker's key is never used.
    """
    key = rsa_key if signer == "genuine" else attacker_key
    value: Any = {
        "jku": trap_server.url,
        "x5u": trap_server.url.replace("jwks.json", "cert.pem"),
        "jwk": key.public_jwk(),
        "x5c": [b64url(key.key.as_der(private=False))],
    }[member]
    token = sign(header_for(key, **{member: value}), access_claims(), key)
    assert_invalid_token(await me(http, token))
    # A second try, so a lazy fetch of the trap would have had every chance.
    assert_invalid_token(await me(http, token))
    assert trap_server.requests == 0


@pytest.mark.parametrize(
    "crit",
    [
        pytest.param({"crit": ["urn:example:must-understand"], "urn:example:must-understand": 1}),
        pytest.param({"crit": ["exp"], "exp": 1}, id="crit-registered-name"),
        pytest.param({"crit": ["b64"], "b64": True}, id="crit-b64"),
        pytest.param({"crit": []}, id="crit-empty"),
    ],
)
async def test_unknown_crit_is_refused(
    http: Client, rsa_key: SigningKey, crit: dict[str, Any]
) -> None:
    token = sign(header_for(rsa_key, **crit), access_claims(), rsa_key)
    assert_invalid_token(await me(http, token))


@pytest.mark.parametrize(
    "typ",
    [
        "JWT",
        "jwt",
        "application/jwt",
        "at+jwt+extra",
        "at+jw",
        "application/at+jwt; charset=utf-8",
        "",
        None,
        7,
        ["at+jwt"],
    ],
)
async def test_typ_other_than_at_jwt_is_refused(
    http: Client, rsa_key: SigningKey, typ: Any
) -> None:
    token = sign(header_for(rsa_key, typ=typ), access_claims(), rsa_key)
    assert_invalid_token(await me(http, token))


async def test_missing_typ_is_refused(http: Client, rsa_key: SigningKey) -> None:
    token = sign(header_for(rsa_key, drop=["typ"]), access_claims(), rsa_key)
    assert_invalid_token(await me(http, token))


async def test_token_signed_by_another_key_under_a_known_kid_is_refused(
    http: Client, rsa_key: SigningKey, attacker_key: SigningKey
) -> None:
    assert attacker_key.kid == rsa_key.kid
    assert_invalid_token(await me(http, mint(attacker_key)))


async def test_es256_token_under_an_rsa_kid_is_refused(
    http: Client, rsa_key: SigningKey, ec_key: SigningKey
) -> None:
    header = header_for(ec_key, kid=rsa_key.kid)
    assert_invalid_token(await me(http, sign(header, access_claims(), ec_key)))


async def test_tampered_payload_is_refused(http: Client, rsa_key: SigningKey) -> None:
    genuine = mint(rsa_key, access_claims(scope="read-posts"))
    header, _, signature = genuine.split(".")
    escalated = b64url(compact_json(access_claims(scope="read-posts admin")))
    assert_invalid_token(await me(http, f"{header}.{escalated}.{signature}"))


async def test_signature_of_another_token_is_refused(http: Client, rsa_key: SigningKey) -> None:
    first = mint(rsa_key).split(".")
    second = mint(rsa_key, access_claims(scope="admin")).split(".")
    assert_invalid_token(await me(http, f"{second[0]}.{second[1]}.{first[2]}"))


@pytest.mark.parametrize(("signer", "kid_of"), [("rsa", "ec"), ("ec", "rsa")])
async def test_token_under_a_key_of_another_type_is_refused_when_the_jwks_pins_no_alg(
    rsa_key: SigningKey, ec_key: SigningKey, signer: str, kid_of: str
) -> None:
    """With no `alg` in the JWKS, the key's type alone must rule the token out (an RSA
    signature checked with an EC key must not even be attempted)."""
    keys = {"rsa": rsa_key, "ec": ec_key}
    unpinned = {
        "keys": [
            {member: value for member, value in key.public_jwk().items() if member != "alg"}
            for key in keys.values()
        ]
    }
    guard = PortcullisGuard(
        guard_config(), keys=StaticKeySource(unpinned), revocations=MemoryRevocationList()
    )
    async with AsyncTestClient(app=guarded_app(guard)) as other:
        for key in keys.values():  # controls: each key verifies its own tokens
            assert (await me(other, mint(key))).status_code == 200
        forged = sign(header_for(keys[signer], kid=keys[kid_of].kid), access_claims(), keys[signer])
        assert_invalid_token(await me(other, forged))


async def test_es256_token_under_a_p384_key_is_refused(http: Client, rsa_key: SigningKey) -> None:
    """ES256 is P-256 with SHA-256 (RFC 7518 §3.4): a JWKS key on another curve, even
    marked ES256 and genuinely signing, does not verify ES256 tokens."""
    p384 = SigningKey(ECKey.generate_key("P-384", private=True), kid="p384", alg="ES256")
    guard = PortcullisGuard(
        guard_config(),
        keys=StaticKeySource(jwks_of(rsa_key, p384)),
        revocations=MemoryRevocationList(),
    )
    async with AsyncTestClient(app=guarded_app(guard)) as other:
        assert_invalid_token(await me(other, mint(p384)))


@pytest.mark.parametrize("spelling", ["junk inside", "standard alphabet", "unused bits", "padded"])
async def test_a_segment_spelled_another_way_is_refused(
    http: Client, rsa_key: SigningKey, spelling: str
) -> None:
    """Only the issuer's own spelling of a token is accepted: a signature segment that
    decodes to the same bytes under a lenient base64 decoder is another token."""
    header, payload, signature = next(
        parts
        for parts in (mint(rsa_key).split(".") for _ in range(100))
        if "-" in parts[2] or "_" in parts[2]
    )
    assert len(signature) % 4 == 2  # a 256-byte signature: its last character has 4 unused bits
    last = URLSAFE_ALPHABET.index(signature[-1])
    respelled = {
        "junk inside": signature[:10] + "!!!!" + signature[10:],
        "standard alphabet": signature.replace("-", "+").replace("_", "/"),
        "unused bits": signature[:-1] + URLSAFE_ALPHABET[last ^ 1],
        "padded": signature + "==",
    }[spelling]
    assert b64url_decode(
        respelled.replace("+", "-").replace("/", "_").replace("!", "").rstrip("=")
    ) == b64url_decode(signature)
    assert respelled != signature
    assert_invalid_token(await me(http, f"{header}.{payload}.{respelled}"))


async def test_es256_and_eddsa_keys_work_and_do_not_mix(
    rsa_key: SigningKey, ec_key: SigningKey
) -> None:
    """The other two signing algorithms pass; a token naming the wrong one for its key fails."""
    ed_key = SigningKey(OKPKey.generate_key("Ed25519", private=True), kid="ed-1", alg="EdDSA")
    guard = PortcullisGuard(
        guard_config(),
        keys=StaticKeySource(jwks_of(rsa_key, ec_key, ed_key)),
        revocations=MemoryRevocationList(),
    )
    async with AsyncTestClient(app=guarded_app(guard)) as http:
        for key in (rsa_key, ec_key, ed_key):
            response = await me(http, mint(key))
            assert response.status_code == 200, (key.alg, response.text)
        for signer, kid in ((ec_key, ed_key.kid), (ed_key, ec_key.kid), (rsa_key, ec_key.kid)):
            token = sign(header_for(signer, kid=kid), access_claims(), signer)
            assert_invalid_token(await me(http, token))


# --- the claims --------------------------------------------------------------------------


async def test_expired_beyond_the_leeway_is_refused(http: Client, rsa_key: SigningKey) -> None:
    now = int(time.time())
    claims = access_claims(iat=now - 900, exp=now - LEEWAY - 5)
    assert_invalid_token(await me(http, mint(rsa_key, claims)))


async def test_expired_within_the_leeway_is_accepted(http: Client, rsa_key: SigningKey) -> None:
    now = int(time.time())
    claims = access_claims(iat=now - 900, exp=now - LEEWAY + 10)
    response = await me(http, mint(rsa_key, claims))
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("claim", ["nbf", "iat"])
async def test_time_claim_in_the_future_beyond_the_leeway_is_refused(
    http: Client, rsa_key: SigningKey, claim: str
) -> None:
    now = int(time.time())
    future: dict[str, Any] = {claim: now + LEEWAY + 10}
    claims = access_claims(**future)
    assert_invalid_token(await me(http, mint(rsa_key, claims)))


@pytest.mark.parametrize("claim", ["nbf", "iat"])
async def test_time_claim_in_the_future_within_the_leeway_is_accepted(
    http: Client, rsa_key: SigningKey, claim: str
) -> None:
    now = int(time.time())
    future: dict[str, Any] = {claim: now + LEEWAY - 10}
    claims = access_claims(**future)
    response = await me(http, mint(rsa_key, claims))
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("claim", REQUIRED_CLAIMS)
async def test_token_missing_a_required_claim_is_refused(
    http: Client, rsa_key: SigningKey, claim: str
) -> None:
    assert_invalid_token(await me(http, mint(rsa_key, access_claims(drop=[claim]))))


@pytest.mark.parametrize("claim", ["iss", "sub", "aud", "jti", "client_id", "sid"])
async def test_token_with_an_empty_claim_is_refused(
    http: Client, rsa_key: SigningKey, claim: str
) -> None:
    assert_invalid_token(await me(http, mint(rsa_key, access_claims(**{claim: ""}))))


@pytest.mark.parametrize(
    "claims",
    [
        pytest.param({"exp": str(int(time.time()) + 900)}, id="exp-string"),
        pytest.param({"exp": None}, id="exp-null"),
        pytest.param({"exp": 1e30}, id="exp-huge-float"),
        pytest.param({"iat": "now"}, id="iat-string"),
        pytest.param({"nbf": "later"}, id="nbf-string"),
        pytest.param({"scope": ["read-posts"]}, id="scope-list"),
        pytest.param({"sub": 42}, id="sub-number"),
        pytest.param({"client_id": None}, id="client-id-null"),
        pytest.param({"sid": {"id": 1}}, id="sid-object"),
    ],
)
async def test_token_with_a_malformed_claim_is_refused(
    http: Client, rsa_key: SigningKey, claims: dict[str, Any]
) -> None:
    assert_invalid_token(await me(http, mint(rsa_key, access_claims(**claims))))


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(b"not json", id="not-json"),
        pytest.param(b"[]", id="array"),
        pytest.param(b"null", id="null"),
        pytest.param(b"\xff\xfe\x00", id="not-utf8"),
        pytest.param(b'{"iss":"\xff"}', id="not-utf8-in-a-string"),
        pytest.param(b"", id="empty"),
    ],
)
async def test_signed_payload_that_is_no_claims_object_is_refused(
    http: Client, rsa_key: SigningKey, payload: bytes
) -> None:
    assert_invalid_token(await me(http, sign(header_for(rsa_key), payload, rsa_key)))


@pytest.mark.parametrize(
    "header",
    [
        pytest.param(b"not json", id="not-json"),
        pytest.param(b'["RS256"]', id="array"),
        pytest.param(b"\xff\xfe", id="not-utf8"),
        pytest.param(b'{"alg":"RS256","kid":"\xff","typ":"at+jwt"}', id="not-utf8-in-a-string"),
        pytest.param(b"[" * 700 + b"]" * 700, id="deeply-nested"),
    ],
)
async def test_header_that_is_no_json_object_is_refused(
    http: Client, rsa_key: SigningKey, header: bytes
) -> None:
    assert_invalid_token(await me(http, sign(header, access_claims(), rsa_key)))


@pytest.mark.parametrize(
    "issuer", ["https://evil.test", f"{ISSUER}/", ISSUER.upper(), f"{ISSUER}.evil.test", ""]
)
async def test_wrong_issuer_is_refused(http: Client, rsa_key: SigningKey, issuer: str) -> None:
    assert_invalid_token(await me(http, mint(rsa_key, access_claims(iss=issuer))))


@pytest.mark.parametrize(
    "audience", ["billing", f"{AUDIENCE} ", AUDIENCE.upper(), ["billing"], [], {"aud": AUDIENCE}]
)
async def test_audience_of_another_service_is_refused(
    http: Client, rsa_key: SigningKey, audience: Any
) -> None:
    assert_invalid_token(await me(http, mint(rsa_key, access_claims(aud=audience))))


# --- not a JWT at all --------------------------------------------------------------------


@pytest.mark.parametrize(
    "token",
    [
        pytest.param(secrets.token_urlsafe(32), id="opaque-refresh-token"),
        pytest.param(secrets.token_hex(32), id="hex-refresh-token"),
        pytest.param("abc", id="abc"),
        pytest.param("a.b.c", id="a.b.c"),
        pytest.param("a.b.c.d.e", id="five-parts"),
        pytest.param("..", id="empty-parts"),
        pytest.param("!!!.@@@.###", id="not-base64"),
        pytest.param("eyJ=.eyJ=.AA==", id="padded"),
        pytest.param("e30.e30.", id="empty-objects"),
        pytest.param("e30.e30.e30", id="empty-objects-signed"),
        pytest.param("A" * 100_000, id="100KB-blob"),
        pytest.param(".".join(["A" * 33_333] * 3), id="100KB-jwt-shaped"),
    ],
)
async def test_refresh_token_or_garbage_as_bearer_is_refused(http: Client, token: str) -> None:
    assert_invalid_token(await me(http, token))


@pytest.mark.parametrize("signature", ["!!!!", "A", "AAAA" * 1000, "=="])
async def test_malformed_signature_segment_is_refused(
    http: Client, rsa_key: SigningKey, signature: str
) -> None:
    header, payload, _ = mint(rsa_key).split(".")
    assert_invalid_token(await me(http, f"{header}.{payload}.{signature}"))


async def test_non_ascii_bearer_token_is_refused(http: Client, rsa_key: SigningKey) -> None:
    token = mint(rsa_key).encode() + "\u00e9".encode("latin-1")
    response = await http.get("/api/me", headers={b"Authorization": b"Bearer " + token})
    assert_invalid_token(response)


async def test_huge_genuinely_signed_token_is_refused(http: Client, rsa_key: SigningKey) -> None:
    claims = access_claims(padding="x" * 100_000)
    assert_invalid_token(await me(http, mint(rsa_key, claims)))


async def test_refresh_token_issued_by_the_auth_service_is_refused(
    http: Client, rsa_key: SigningKey
) -> None:
    """An opaque refresh token next to a genuine access token: only the latter passes."""
    genuine = mint(rsa_key)
    refresh_token = secrets.token_urlsafe(32)
    assert (await me(http, genuine)).status_code == 200
    assert_invalid_token(await me(http, refresh_token))


# --- revoked ------------------------------------------------------------------------------


async def test_revoked_jti_is_refused(
    http: Client, rsa_key: SigningKey, redis_client: aioredis.Redis, revocation_keys: RevocationKeys
) -> None:
    claims = access_claims()
    token = mint(rsa_key, claims)
    assert (await me(http, token)).status_code == 200
    await redis_client.set(revocation_keys.jti(str(uuid.uuid4())), "1")  # another token
    assert (await me(http, token)).status_code == 200
    await redis_client.set(revocation_keys.jti(claims["jti"]), "1", ex=900)
    assert_invalid_token(await me(http, token))


async def test_revoked_sid_is_refused(
    http: Client, rsa_key: SigningKey, redis_client: aioredis.Redis, revocation_keys: RevocationKeys
) -> None:
    claims = access_claims()
    token = mint(rsa_key, claims)
    sibling = mint(rsa_key, access_claims(sid=claims["sid"]))
    assert (await me(http, token)).status_code == 200
    await redis_client.set(revocation_keys.sid(claims["sid"]), "1", ex=900)
    assert_invalid_token(await me(http, token))
    assert_invalid_token(await me(http, sibling))
    assert (await me(http, mint(rsa_key))).status_code == 200  # another grant


@pytest.mark.parametrize(("offset", "revoked"), [(-1, False), (0, True), (5, True)])
async def test_token_of_a_revoked_user_is_refused(
    http: Client,
    rsa_key: SigningKey,
    redis_client: aioredis.Redis,
    revocation_keys: RevocationKeys,
    offset: int,
    revoked: bool,
) -> None:
    """The user's cutoff T revokes every token issued at or before T."""
    claims = access_claims(iat=int(time.time()) - 10)
    token = mint(rsa_key, claims)
    await redis_client.set(revocation_keys.user(claims["sub"]), str(claims["iat"] + offset))
    response = await me(http, token)
    if revoked:
        assert_invalid_token(response)
    else:
        assert response.status_code == 200, response.text


@pytest.mark.parametrize("kind", ["user-token", "client-token"])
@pytest.mark.parametrize(("offset", "revoked"), [(-1, False), (0, True), (5, True)])
async def test_token_of_a_revoked_client_is_refused(
    http: Client,
    rsa_key: SigningKey,
    redis_client: aioredis.Redis,
    revocation_keys: RevocationKeys,
    kind: str,
    offset: int,
    revoked: bool,
) -> None:
    iat = int(time.time()) - 10
    claims = access_claims(iat=iat) if kind == "user-token" else client_claims(iat=iat)
    token = mint(rsa_key, claims)
    await redis_client.set(revocation_keys.client(claims["client_id"]), str(iat + offset))
    response = await me(http, token)
    if revoked:
        assert_invalid_token(response)
    else:
        assert response.status_code == 200, response.text


async def test_user_cutoff_does_not_touch_a_client_token_named_alike(
    http: Client, rsa_key: SigningKey, redis_client: aioredis.Redis, revocation_keys: RevocationKeys
) -> None:
    """A client token's `sub` is the client id: a *user* entry of that name is not its entry."""
    claims = client_claims(iat=int(time.time()) - 10)
    await redis_client.set(revocation_keys.user(claims["sub"]), str(claims["iat"] + 5))
    response = await me(http, mint(rsa_key, claims))
    assert response.status_code == 200, response.text


# --- how the token travels ----------------------------------------------------------------


async def test_no_token_gets_a_bare_challenge(http: Client) -> None:
    response = await http.get("/api/me")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == f'Bearer realm="{REALM}"'
    assert "error=" not in response.headers["www-authenticate"]


async def test_token_in_the_query_string_is_not_accepted(http: Client, rsa_key: SigningKey) -> None:
    token = mint(rsa_key)
    assert (await me(http, token)).status_code == 200  # the token itself is good
    response = await http.get("/api/me", params={"access_token": token})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == f'Bearer realm="{REALM}"'
    assert token not in response.text


async def test_token_in_a_form_body_is_not_accepted(http: Client, rsa_key: SigningKey) -> None:
    response = await http.request(
        "GET",
        "/api/me",
        content=f"access_token={mint(rsa_key)}",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == f'Bearer realm="{REALM}"'


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER", "bEaReR"])
async def test_bearer_scheme_is_case_insensitive(
    http: Client, rsa_key: SigningKey, scheme: str
) -> None:
    response = await me(http, mint(rsa_key), scheme=scheme)
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("value", ["Basic dXNlcjpwYXNz", "Token abc", "Bearer", "Bearer   "])
async def test_authorization_without_a_bearer_token_is_refused(http: Client, value: str) -> None:
    response = await http.get("/api/me", headers={"Authorization": value})
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith(f'Bearer realm="{REALM}"')


async def test_excluded_route_needs_no_token(http: Client) -> None:
    response = await http.get("/healthz")
    assert response.status_code == 200


async def test_invalid_token_answer_does_not_echo_the_token(
    http: Client, rsa_key: SigningKey, attacker_key: SigningKey
) -> None:
    token = mint(attacker_key)
    response = await me(http, token)
    assert_invalid_token(response)
    assert token not in response.text
    assert token not in response.headers["www-authenticate"]
    assert response.headers["cache-control"] == "no-store"


# --- scopes and who the token speaks for --------------------------------------------------


def test_guards_run_on_the_event_loop() -> None:
    """Litestar runs a plain-function guard in a worker thread: a thread hop per request."""
    for guard in (scopes("read-posts"), scope("read-posts"), user_required, client_only):
        assert inspect.iscoroutinefunction(guard), guard


def assert_insufficient_scope(response: Any, scope: str | None) -> None:
    assert response.status_code == 403, (response.status_code, response.text)
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith(f'Bearer realm="{REALM}"'), challenge
    assert 'error="insufficient_scope"' in challenge, challenge
    if scope is not None:
        assert f'scope="{scope}"' in challenge, challenge
    assert response.json()["error"] == "insufficient_scope"


async def test_scopes_guard_needs_the_scope(http: Client, rsa_key: SigningKey) -> None:
    without = mint(rsa_key, access_claims(scope="write-posts"))
    assert_insufficient_scope(
        await http.get("/api/posts", headers=bearer(without)), scope="read-posts"
    )
    with_scope = mint(rsa_key, access_claims(scope="read-posts"))
    assert (await http.get("/api/posts", headers=bearer(with_scope))).status_code == 200


async def test_scopes_guard_needs_every_listed_scope(http: Client, rsa_key: SigningKey) -> None:
    one = mint(rsa_key, access_claims(scope="read-posts"))
    assert_insufficient_scope(
        await http.get("/api/posts/editor", headers=bearer(one)), scope="read-posts write-posts"
    )
    both = mint(rsa_key, access_claims(scope="read-posts write-posts"))
    assert (await http.get("/api/posts/editor", headers=bearer(both))).status_code == 200


@pytest.mark.parametrize("granted", ["admin", "write-posts", "read-posts admin"])
async def test_scope_guard_is_satisfied_by_any_listed_scope(
    http: Client, rsa_key: SigningKey, granted: str
) -> None:
    token = mint(rsa_key, access_claims(scope=granted))
    response = await http.get("/api/posts/any", headers=bearer(token))
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("granted", ["read-posts", "", "write-posts-extra admin2"])
async def test_scope_guard_refuses_when_no_listed_scope_is_held(
    http: Client, rsa_key: SigningKey, granted: str
) -> None:
    token = mint(rsa_key, access_claims(scope=granted))
    assert_insufficient_scope(
        await http.get("/api/posts/any", headers=bearer(token)), scope="write-posts admin"
    )


async def test_user_required_refuses_a_client_token(http: Client, rsa_key: SigningKey) -> None:
    client_token = mint(rsa_key, client_claims())
    assert_insufficient_scope(
        await http.get("/api/user-only", headers=bearer(client_token)), scope=None
    )
    user_token = mint(rsa_key, access_claims())
    assert (await http.get("/api/user-only", headers=bearer(user_token))).status_code == 200


async def test_client_only_refuses_a_user_token(http: Client, rsa_key: SigningKey) -> None:
    user_token = mint(rsa_key, access_claims())
    assert_insufficient_scope(
        await http.get("/api/client-only", headers=bearer(user_token)), scope=None
    )
    client_token = mint(rsa_key, client_claims())
    assert (await http.get("/api/client-only", headers=bearer(client_token))).status_code == 200


async def test_scope_guards_answer_401_not_403_for_a_bad_token(
    http: Client, attacker_key: SigningKey
) -> None:
    """Authentication comes first: a forged token never reaches a scope check."""
    forged = mint(attacker_key, access_claims(scope="read-posts write-posts admin"))
    for path in ("/api/posts", "/api/posts/editor", "/api/posts/any", "/api/client-only"):
        assert_invalid_token(await http.get(path, headers=bearer(forged)))


@pytest.mark.parametrize(
    ("granted", "expected"),
    [
        ("read-posts admin", {"can_read": True, "can_write": False, "can_admin": True}),
        ("write-posts", {"can_read": False, "can_write": True, "can_admin": False}),
        ("", {"can_read": False, "can_write": False, "can_admin": False}),
        # Scope tokens match whole: neither a prefix nor a longer name grants one.
        ("read-posts-extra admi", {"can_read": False, "can_write": False, "can_admin": False}),
    ],
)
async def test_principal_can_checks_whole_scope_tokens(
    http: Client, rsa_key: SigningKey, granted: str, expected: dict[str, bool]
) -> None:
    response = await me(http, mint(rsa_key, access_claims(scope=granted)))
    assert response.status_code == 200, response.text
    body = response.json()
    assert {name: body[name] for name in expected} == expected
