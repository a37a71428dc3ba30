"""Random secrets (refresh tokens, client secrets) and how they are stored.

RFC 9700 §4.14 and our bar: at least 256 bits, stored as SHA-256 (right for
high-entropy random values; argon2 is for user passwords), compared in
constant time, shown once.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

SECRET_BYTES = 32


def generate_secret() -> str:
    """256 random bits as base64url: URL-safe, so Basic auth works even unencoded."""
    return secrets.token_urlsafe(SECRET_BYTES)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def secret_matches(secret: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_secret(secret), stored_hash)


def generate_client_id() -> str:
    """A client id that can never be mistaken for a user id (a UUID)."""
    return "client_" + secrets.token_hex(10)
