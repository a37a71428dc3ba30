"""Sealing private keys at rest: AES-256-GCM under a key derived by HKDF.

The sealing key is HKDF-SHA256(PORTCULLIS_SECRET_KEY); the `kid` is the
associated data, so a sealed key cannot be moved to another row unnoticed. To
rotate the secret: set the new one as PORTCULLIS_SECRET_KEY and the old one as
PORTCULLIS_SECRET_KEY_PREVIOUS (keys then open under either), run
`portcullis keys reencrypt` (every key sealed under the new one), then drop the
old one.
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


def _aead(secret_key: bytes) -> AESGCM:
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(secret_key)
    return AESGCM(derived)


class KeySealer:
    def __init__(self, secret_key: bytes, previous_secret_key: bytes | None = None) -> None:
        """Seals under `secret_key`; opens under it or, while the key-encryption secret
        is being rotated, under `previous_secret_key` (PORTCULLIS_SECRET_KEY_PREVIOUS)."""
        self._aead = _aead(secret_key)
        self._openers = [self._aead]
        if previous_secret_key is not None:
            self._openers.append(_aead(previous_secret_key))

    def seal(self, plaintext: bytes, kid: str) -> bytes:
        nonce = os.urandom(_NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, plaintext, kid.encode())

    def unseal(self, sealed: bytes, kid: str) -> bytes:
        nonce, ciphertext = sealed[:_NONCE_BYTES], sealed[_NONCE_BYTES:]
        for opener in self._openers:
            try:
                return opener.decrypt(nonce, ciphertext, kid.encode())
            except InvalidTag:
                continue
        raise UnsealError(
            f"signing key {kid} cannot be opened: it was sealed under another "
            "PORTCULLIS_SECRET_KEY (set the old one as PORTCULLIS_SECRET_KEY_PREVIOUS, then "
            "run `portcullis keys reencrypt`)"
        )

    def reseal(self, sealed: bytes, kid: str) -> bytes:
        """`sealed`, opened under either secret and sealed again under the current one."""
        return self.seal(self.unseal(sealed, kid), kid)
