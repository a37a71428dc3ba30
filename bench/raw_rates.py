"""Raw in-process rates, the baselines of the token endpoint's rows: RS256 signing (the
auth service's own signer, and joserfc's `jwt.encode`) and argon2 verification, each
looped on the servers' core while the servers idle."""

from __future__ import annotations

import os
import statistics
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

from joserfc import jwt
from joserfc.jwk import RSAKey
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

from bench.cores import LOAD_CORE, SERVER_CORE, pinned
from bench.figures import Figure
from bench.settings import RUNS
from portcullis_auth.keys.keyring import LoadedKey


def raw_rate(operation: Callable[[], object], seconds: float = 3.0, runs: int = RUNS) -> Figure:
    """Median ops/s of an in-process loop, on the servers' core while they idle: the rate
    a server could reach if the operation were all it did."""
    samples = []
    on_server_core = hasattr(os, "sched_setaffinity") and bool(pinned(SERVER_CORE))
    if on_server_core:
        os.sched_setaffinity(0, {SERVER_CORE})
    try:
        for _ in range(runs):
            count, start = 0, time.perf_counter()
            while time.perf_counter() - start < seconds:
                operation()
                count += 1
            samples.append(count / (time.perf_counter() - start))
    finally:
        if on_server_core:
            os.sched_setaffinity(0, {LOAD_CORE})
    return Figure(statistics.median(samples), samples=[round(s, 1) for s in samples])


class RawSigning:
    """Signing an access token's claims with a fresh 2048-bit RSA key."""

    def __init__(self) -> None:
        self.key = RSAKey.generate_key(2048, private=True)
        self.claims = {
            "iss": "x",
            "sub": str(uuid.uuid4()),
            "aud": "posts",
            "exp": 2**31,
            "iat": 0,
            "jti": "j",
            "client_id": "c",
            "scope": "read-posts",
            "sid": "s",
        }
        # The denominator is the service's own signer (a header built once per key,
        # joserfc's RSA signature); joserfc's whole `jwt.encode` is slower, shown beside it.
        self.signer = LoadedKey(
            kid="k",
            algorithm="RS256",
            activates_at=datetime.now(UTC),
            public_jwk=self.key.as_dict(private=False),
            private_key=self.key,
        )
        self.header = {"alg": "RS256", "kid": "k", "typ": "at+jwt"}

    def service_signer(self) -> Callable[[], object]:
        signer, claims = self.signer, self.claims
        return lambda: signer.sign_access_token(claims)

    def jwt_encode(self) -> Callable[[], object]:
        header, claims, key = self.header, self.claims, self.key
        return lambda: jwt.encode(header, claims, key, algorithms=["RS256"])


def argon2_verify() -> Callable[[], object]:
    """Checking a password against its argon2 hash, as a password login does."""
    hasher = PasswordHash((Argon2Hasher(),))
    stored = hasher.hash("correct horse")
    return lambda: hasher.verify("correct horse", stored)
