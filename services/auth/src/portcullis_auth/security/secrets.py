"""Random secrets (refresh tokens, client secrets) and how they are stored.

RFC 9700 §4.14 and our bar: at least 256 bits, stored as SHA-256 (right for
high-entropy random values; argon2 is for user passwords), compared in
constant time, shown once.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

SECRET_BYTES = 32
CLIENT_ID_HEX_DIGITS = 20

_CLIENT_ID = re.compile(rf"client_[0-9a-f]{{{CLIENT_ID_HEX_DIGITS}}}")
_HEX = re.compile(r"[0-9a-fA-F]+")
_BASE64URL = re.compile(r"[A-Za-z0-9_-]+")


def generate_secret() -> str:
    """256 random bits as base64url: URL-safe, so Basic auth works even unencoded."""
    return secrets.token_urlsafe(SECRET_BYTES)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def secret_matches(secret: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_secret(secret), stored_hash)


def generate_client_id() -> str:
    """A client id that can never be mistaken for a user id (a UUID)."""
    return "client_" + secrets.token_hex(CLIENT_ID_HEX_DIGITS // 2)


def is_client_id(value: str) -> bool:
    """Whether `value` has the shape of the client ids we generate (and install takes)."""
    return _CLIENT_ID.fullmatch(value) is not None


def require_client_id(client_id: str) -> str:
    """`client_id`, if it has the shape of the ids we generate; else ValueError."""
    if not is_client_id(client_id):
        raise ValueError(
            f"a client id is `client_` and {CLIENT_ID_HEX_DIGITS} lowercase hex digits "
            """(try: python -c "import secrets; print('client_' + secrets.token_hex(10))")"""
        )
    return client_id


def require_strong_secret(secret: str) -> str:
    """`secret`, if it carries at least 256 random bits, written as hex or base64url (the
    alphabets of `generate_secret` and `secrets.token_hex`, which need no encoding in
    Basic auth); else ValueError. The message never repeats the secret."""
    bits_per_char = 4 if _HEX.fullmatch(secret) else 6
    strong = (
        _BASE64URL.fullmatch(secret) is not None
        and len(secret) * bits_per_char >= SECRET_BYTES * 8
        and len(set(secret)) >= 8  # not "aaaa…": a typed placeholder, not random bytes
    )
    if not strong:
        raise ValueError(
            f"a client secret must be at least {SECRET_BYTES} random bytes, written as "
            "base64url or hex (try: python -c "
            f'"import secrets; print(secrets.token_urlsafe({SECRET_BYTES}))")'
        )
    return secret
