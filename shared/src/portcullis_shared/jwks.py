"""A cache of the auth service's public keys (RFC 7517 JWKS).

Loaded from the one configured URL and kept for its `Cache-Control: max-age`.
An unknown `kid` triggers a refresh at most once per cooldown, and concurrent
misses share that one fetch, so a flood of forged kids costs the auth service
nothing. When the auth service cannot be reached, the cached keys keep
working for a bounded time (default 24 h); with nothing usable cached, key
lookups fail closed. A cache that holds no keys yet (the resource service
started before the auth service) retries in the background every
`retry_interval`, doubling up to `RETRY_INTERVAL_CAP` (1 s), until keys arrive,
so the first token after the auth service comes up is served within about a
second, without waiting out the cooldown; `has_keys` tells a readiness probe
whether keys are held.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import httpx
from joserfc.jwk import ECKey, OKPKey, RSAKey

from portcullis_shared.errors import GuardUnavailableError, InvalidTokenError
from portcullis_shared.metrics import JWKS_FETCH_FAILURES, JWKS_FETCHES

logger = logging.getLogger("portcullis.jwks")

PublicKey = RSAKey | ECKey | OKPKey
RETRY_INTERVAL_CAP = 1.0
"""Longest wait between attempts to load keys while none are held, seconds."""
MIN_TTL = 30.0
"""Least time a JWKS is kept, seconds, whatever its max-age says: a max-age of 0
must not turn every request into a fetch. Key rotation counts this floor."""
_MAX_AGE = re.compile(r"max-age\s*=\s*(\d+)", re.IGNORECASE)
# Asymmetric key types only: a symmetric "oct" key in a JWKS is never trusted.
_KEY_TYPES: Mapping[str, type[PublicKey]] = {"RSA": RSAKey, "EC": ECKey, "OKP": OKPKey}


class KeySource(Protocol):
    async def get_key(self, kid: str) -> tuple[PublicKey, str | None]:
        """The key for `kid` and the `alg` the JWKS pins it to, if any."""
        ...


def parse_jwks(document: Any) -> dict[str, tuple[PublicKey, str | None]]:
    """Public signing keys by kid; private members, symmetric keys and duplicates are dropped."""
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError("not a JWKS document")
    keys: dict[str, tuple[PublicKey, str | None]] = {}
    duplicates: set[str] = set()
    for entry in document["keys"]:
        if not isinstance(entry, dict):
            continue
        kid, kty = entry.get("kid"), entry.get("kty")
        if (
            not isinstance(kid, str)
            or not isinstance(kty, str)
            or kty not in _KEY_TYPES
            or entry.get("use", "sig") != "sig"
        ):
            continue
        if kid in keys:
            duplicates.add(kid)
            continue
        public = {k: v for k, v in entry.items() if k not in {"d", "p", "q", "dp", "dq", "qi"}}
        try:
            key = _KEY_TYPES[kty].import_key(public)
        except Exception:  # noqa: BLE001 - a malformed entry is skipped, not fatal
            logger.warning("skipping malformed JWKS key %s", kid[:64])
            continue
        alg = entry.get("alg")
        keys[kid] = (key, alg if isinstance(alg, str) else None)
    for kid in duplicates:  # an ambiguous kid cannot be trusted
        keys.pop(kid, None)
    return keys


class JWKSCache:
    def __init__(
        self,
        url: str,
        *,
        client: httpx.AsyncClient | None = None,
        cooldown: float = 10.0,
        max_stale: float = 86_400.0,
        min_ttl: float = MIN_TTL,
        max_ttl: float = 86_400.0,
        timeout: float = 3.0,
        retry_interval: float = 0.25,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`retry_interval`: real seconds before the first retry while no keys are held
        (each retry waits twice the one before, up to RETRY_INTERVAL_CAP);
        `clock`: the seconds that max-age, `cooldown` and `max_stale` are measured in
        (a parameter so that tests can move it on instead of waiting)."""
        self.url = url
        self._client = client
        self._owns_client = client is None
        self._cooldown = cooldown
        self._max_stale = max_stale
        self._min_ttl = min_ttl
        self._max_ttl = max_ttl
        self._timeout = timeout
        self._retry_interval = retry_interval
        self._clock = clock
        self._keys: dict[str, tuple[PublicKey, str | None]] = {}
        self._fetched_at = float("-inf")
        self._expires_at = float("-inf")
        self._last_attempt = float("-inf")
        self._inflight: asyncio.Task[None] | None = None
        self._loader: asyncio.Task[None] | None = None
        self.fetch_count = 0
        """How many fetches were started (for tests and metrics)."""

    @property
    def has_keys(self) -> bool:
        """True while keys are held that lookups may use (fetched within max_stale)."""
        return bool(self._keys) and self._clock() - self._fetched_at <= self._max_stale

    async def start(self) -> None:
        """Load the keys; while the auth service cannot be reached, keep trying in the
        background (lookups fail closed until keys arrive)."""
        try:
            await self._refresh()
        except Exception as exc:  # noqa: BLE001 - lookups fail closed until keys arrive
            logger.warning(
                "JWKS not loaded from %s: %s; retrying until it is",
                self.url,
                type(exc).__name__,
            )
        if not self.has_keys:
            self._loader = asyncio.create_task(self._load_until_held())

    async def _load_until_held(self) -> None:
        interval = self._retry_interval
        while not self.has_keys:
            await asyncio.sleep(interval)
            interval = min(interval * 2, max(RETRY_INTERVAL_CAP, self._retry_interval))
            with contextlib.suppress(Exception):  # logged once at start; quiet until it works
                await self._refresh()
        logger.info("JWKS loaded from %s", self.url)

    async def close(self) -> None:
        loader, self._loader = self._loader, None
        if loader is not None:
            loader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await loader
        if self._client is not None and self._owns_client:
            await self._client.aclose()

    async def get_key(self, kid: str) -> tuple[PublicKey, str | None]:
        now = self._clock()
        # Keys past max_stale are refetched, not refused, while the auth service answers.
        stale = now - self._fetched_at > self._max_stale
        if now >= self._expires_at or stale or kid not in self._keys:
            if self._inflight is not None and not self._inflight.done():
                await self._try_refresh()  # joins the fetch under way
            elif now - self._last_attempt >= self._cooldown:
                await self._try_refresh()
        if self._clock() - self._fetched_at > self._max_stale:
            raise GuardUnavailableError("signing keys cannot be loaded")
        found = self._keys.get(kid)
        if found is None:
            raise InvalidTokenError("unknown signing key")
        return found

    async def _try_refresh(self) -> None:
        try:
            await self._refresh()
        except Exception as exc:  # noqa: BLE001 - stale keys serve until max_stale
            logger.warning("JWKS refresh from %s failed: %s", self.url, type(exc).__name__)

    async def _refresh(self) -> None:
        """Fetch the JWKS; concurrent callers share one request."""
        if self._inflight is None or self._inflight.done():
            self._last_attempt = self._clock()
            self._inflight = asyncio.ensure_future(self._fetch())
        await asyncio.shield(self._inflight)

    async def _fetch(self) -> None:
        self.fetch_count += 1
        JWKS_FETCHES.inc()
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self._timeout, follow_redirects=False)
        try:
            response = await self._client.get(self.url, headers={"Accept": "application/json"})
            response.raise_for_status()
            keys = parse_jwks(response.json())
        except Exception:
            JWKS_FETCH_FAILURES.inc()
            raise
        now = self._clock()
        self._keys = keys
        self._fetched_at = now
        self._expires_at = now + self._ttl(response.headers.get("cache-control"))

    def _ttl(self, cache_control: str | None) -> float:
        match = _MAX_AGE.search(cache_control or "")
        seconds = float(match.group(1)) if match else self._min_ttl
        return min(max(seconds, self._min_ttl), self._max_ttl)


class StaticKeySource:
    """Keys held in memory: for tests and for services that pin their keys."""

    def __init__(self, jwks: Mapping[str, Any]) -> None:
        self._keys = parse_jwks(dict(jwks))

    async def get_key(self, kid: str) -> tuple[PublicKey, str | None]:
        found = self._keys.get(kid)
        if found is None:
            raise InvalidTokenError("unknown signing key")
        return found
