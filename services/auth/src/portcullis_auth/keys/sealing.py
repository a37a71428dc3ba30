"""Sealing private keys at rest: AES-256-GCM under a key derived by HKDF.

The sealing key is HKDF-SHA256(PORTCULLIS_SECRET_KEY); the `kid` is the
associated data, so a sealed key cannot be moved to another row unnoticed.
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_NONCE_BYTES = 12
_INFO = b"portcullis signing-key sealing v1"


class UnsealError(Exception):
    """The sealed key does not open under this secret key: wrong PORTCULLIS_SECRET_KEY?"""


class KeySealer:
    def __init__(self, secret_key: bytes) -> None:
        derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(
            secret_key
        )
        self._aead = AESGCM(derived)

    def seal(self, plaintext: bytes, kid: str) -> bytes:
        nonce = os.urandom(_NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, plaintext, kid.encode())

    def unseal(self, sealed: bytes, kid: str) -> bytes:
        nonce, ciphertext = sealed[:_NONCE_BYTES], sealed[_NONCE_BYTES:]
        try:
            return self._aead.decrypt(nonce, ciphertext, kid.encode())
        except InvalidTag:
            raise UnsealError(
                f"signing key {kid} cannot be opened: PORTCULLIS_SECRET_KEY differs from the one "
                "that sealed it"
            ) from None
