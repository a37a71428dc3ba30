"""Proof Key for Code Exchange (RFC 7636), S256 only (RFC 9700 §2.1.1).

`plain` proves nothing a code thief lacks, so every client, public or
confidential, sends an S256 challenge with its authorization request and the
verifier with its token request.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

from portcullis_auth.oauth2.errors import InvalidGrantError, InvalidRequestError

S256 = "S256"
_VERIFIER = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")
"""§4.1: unreserved characters, 43 to 128 of them."""
_CHALLENGE = re.compile(r"^[A-Za-z0-9_-]{43}$")
"""§4.2: BASE64URL(SHA256(verifier)), without padding: always 43 characters."""


def check_challenge(challenge: str | None, method: str | None) -> str:
    """The request's code challenge, or `invalid_request` (§4.4.1)."""
    if challenge is None:
        raise InvalidRequestError("code_challenge is required (PKCE, RFC 7636)")
    if method != S256:
        raise InvalidRequestError("code_challenge_method must be S256")
    if not _CHALLENGE.match(challenge):
        raise InvalidRequestError("code_challenge is not an S256 challenge")
    return challenge


def challenge_of(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def check_verifier(verifier: str | None, challenge: str) -> None:
    """§4.6: the verifier must hash to the challenge the code was issued for."""
    if verifier is None:
        raise InvalidRequestError("code_verifier is required (PKCE, RFC 7636)")
    if not _VERIFIER.match(verifier) or not hmac.compare_digest(challenge_of(verifier), challenge):
        raise InvalidGrantError("the code_verifier does not match the code_challenge")
