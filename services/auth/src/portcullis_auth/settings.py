"""Typed settings of the auth service, read once from `PORTCULLIS_*` variables.

One dataclass per concern; `get_settings()` reads the environment (and an
optional `.env`) once per process. A missing or invalid value raises
`SettingsError` naming the variable, and startup stops with that message.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache

from portcullis_shared.environment import EnvReader, SettingsError, load_dotenv_file
from portcullis_shared.observability import ObservabilitySettings
from portcullis_shared.scopes import DEFAULT_PRIVILEGED_SCOPES, DEFAULT_SCOPES, ScopeRegistry
from portcullis_shared.sql import DEFAULT_POOL_SIZE

SIGNING_ALGORITHMS = ("RS256", "ES256", "EdDSA")
DEFAULT_AUDIENCE = "posts"
"""The audience of a client created without one, and of the auth service's own routes."""
DAY = 86_400


@dataclass(frozen=True, slots=True)
class ServerSettings:
    host: str = "127.0.0.1"
    """Address the auth service binds to."""
    port: int = 8000
    """Port the auth service listens on."""
    trusted_proxies: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    """Peers whose `X-Forwarded-For` is believed (CIDRs)."""
    cors_origins: tuple[str, ...] = ()
    """First-party page origins allowed to call the personal-access-token routes."""
    metrics: bool = False
    """Serve Prometheus metrics at /metrics (no token needed: expose it to the scraper only)."""


@dataclass(frozen=True, slots=True)
class DatabaseSettings:
    url: str = ""
    """SQLAlchemy async URL: postgresql+asyncpg://… or sqlite+aiosqlite:///…"""
    pool_size: int = DEFAULT_POOL_SIZE
    """Connections kept open per process (Postgres); half as many again at peaks. The
    auth service gives this many to its token endpoint and half as many to the rest."""


@dataclass(frozen=True, slots=True)
class RedisSettings:
    url: str | None = None
    """Redis URL; None only in the embedded default, which counts in memory."""
    key_prefix: str = "portcullis:"
    """Prefix of every key the service writes."""


@dataclass(frozen=True, slots=True)
class TokenSettings:
    issuer: str = ""
    """The auth service's public URL: the `iss` of every token."""
    signing_algorithm: str = "RS256"
    """JWS algorithm of new signing keys: RS256, ES256 or EdDSA."""
    access_token_ttl: int = 900
    """Access token lifetime, seconds."""
    refresh_token_ttl: int = 30 * DAY
    """Lifetime of each refresh token, seconds."""
    refresh_family_ttl: int = 90 * DAY
    """Lifetime of a refresh family (grant), seconds."""
    refresh_grace: int = 10
    """Seconds in which a same-client repeat of a rotated refresh token is not reuse."""
    pat_ttl: int = 365 * DAY
    """Default personal access token lifetime, seconds."""
    pat_max_ttl: int = 365 * DAY
    """Longest personal access token lifetime, seconds."""
    jwks_max_age: int = 300
    """`Cache-Control: max-age` of the JWKS, seconds."""
    leeway: int = 30
    """Clock leeway, seconds."""
    device_poll_interval: int = 5
    """Seconds a device waits between polls for its tokens (RFC 8628 §3.2 `interval`)."""
    account_audiences: tuple[str, ...] = (DEFAULT_AUDIENCE,)
    """Audiences whose tokens the auth service's own bearer routes accept (personal
    access tokens, logout): a token meant for another service opens none of them."""

    @property
    def max_token_ttl(self) -> int:
        """The longest any access token can stay valid, leeway included."""
        return max(self.access_token_ttl, self.pat_max_ttl) + self.leeway


@dataclass(frozen=True, slots=True)
class LoginSettings:
    max_failures: int = 5
    """Password failures per (username, client IP) before backing off."""
    failure_window: int = 900
    """Seconds a failure is remembered."""
    max_backoff: int = 900
    """Longest wait imposed after repeated failures, seconds."""
    max_failures_per_ip: int = 50
    """Password failures per client IP, whatever the usernames, before backing off."""
    hash_threads: int = 1
    """Argon2 verifies run at once (each holds 64 MiB while it runs)."""
    hash_queue: int = 16
    """Password checks that may wait for a hashing thread; past it, 503 and Retry-After."""
    hash_queue_per_ip: int = 4
    """Of which for one client address: one caller cannot take the whole queue."""


DEFAULT_RATE_PER_IP = "1200/minute"
DEFAULT_RATE_PER_CLIENT = "6000/minute"


@dataclass(frozen=True, slots=True)
class RateLimitSettings:
    """Budgets of the token, introspection, revocation, personal-access-token,
    authorization and device endpoints, each endpoint counted apart."""

    enabled: bool = True
    """Off only where something in front of the service already limits."""
    per_ip: str = DEFAULT_RATE_PER_IP
    """Requests one client address may make to one endpoint (IPv6 by its /64)."""
    per_client: str = DEFAULT_RATE_PER_CLIENT
    """Requests one client may make to one endpoint, unless the client has its own
    (`portcullis client update CLIENT --rate-limit`)."""


@dataclass(frozen=True, slots=True)
class AuthSettings:
    server: ServerSettings
    database: DatabaseSettings
    redis: RedisSettings
    tokens: TokenSettings
    login: LoginSettings
    secret_key: bytes = field(repr=False)
    """Master secret (≥ 32 random bytes); seals signing keys."""
    secret_key_previous: bytes | None = field(default=None, repr=False)
    """The master secret before a rotation: signing keys sealed under it still open
    until `portcullis keys reencrypt` has sealed them under `secret_key`."""
    scopes: ScopeRegistry = field(default_factory=ScopeRegistry)
    """Configured scopes with their descriptions."""
    observability: ObservabilitySettings = field(default_factory=ObservabilitySettings)
    """Log format and tracing."""
    rate_limits: RateLimitSettings = field(default_factory=RateLimitSettings)
    """Requests per endpoint, per client address and per client."""

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, *, require_redis: bool = True
    ) -> AuthSettings:
        env = EnvReader(environ)
        redis_url = (
            env.url("REDIS_URL", schemes=("redis", "rediss", "unix"))
            if require_redis or env.raw("REDIS_URL")
            else None
        )
        refresh_ttl = env.integer("REFRESH_TOKEN_TTL", 30 * DAY, minimum=60)
        pat_max_ttl = env.integer("PAT_MAX_TTL", 365 * DAY, minimum=60)
        try:
            scopes = ScopeRegistry(
                descriptions=env.json_object("SCOPES") or dict(DEFAULT_SCOPES),
                privileged=frozenset(
                    env.words("PRIVILEGED_SCOPES", tuple(DEFAULT_PRIVILEGED_SCOPES))
                ),
            )
        except ValueError as exc:
            raise SettingsError(
                f"PORTCULLIS_SCOPES / PORTCULLIS_PRIVILEGED_SCOPES: {exc}"
            ) from None
        return cls(
            server=ServerSettings(
                host=env.text("HOST", "127.0.0.1"),
                port=env.integer("PORT", 8000, minimum=1, maximum=65535),
                trusted_proxies=env.networks("TRUSTED_PROXIES"),
                cors_origins=cors_origins(env),
                metrics=env.flag("METRICS", default=False),
            ),
            database=DatabaseSettings(
                url=env.url("DATABASE_URL", schemes=("postgresql+asyncpg", "sqlite+aiosqlite")),
                pool_size=env.integer("DATABASE_POOL_SIZE", DEFAULT_POOL_SIZE, minimum=1),
            ),
            redis=RedisSettings(url=redis_url, key_prefix=env.text("REDIS_PREFIX", "portcullis:")),
            tokens=TokenSettings(
                issuer=env.url("ISSUER", schemes=("http", "https")),
                signing_algorithm=env.choice("SIGNING_ALG", "RS256", SIGNING_ALGORITHMS),
                access_token_ttl=env.integer("ACCESS_TOKEN_TTL", 900, minimum=10),
                refresh_token_ttl=refresh_ttl,
                refresh_family_ttl=env.integer("REFRESH_FAMILY_TTL", 90 * DAY, minimum=refresh_ttl),
                refresh_grace=env.integer("REFRESH_GRACE", 10, minimum=0, maximum=60),
                pat_ttl=env.integer("PAT_TTL", 365 * DAY, minimum=60, maximum=pat_max_ttl),
                pat_max_ttl=pat_max_ttl,
                jwks_max_age=env.integer("JWKS_MAX_AGE", 300, minimum=0, maximum=DAY),
                leeway=env.integer("LEEWAY", 30, minimum=0, maximum=60),
                device_poll_interval=env.integer("DEVICE_POLL_INTERVAL", 5, minimum=1, maximum=60),
                account_audiences=account_audiences(env),
            ),
            login=LoginSettings(
                max_failures=env.integer("LOGIN_MAX_FAILURES", 5, minimum=1),
                max_failures_per_ip=env.integer("LOGIN_MAX_FAILURES_PER_IP", 50, minimum=1),
                failure_window=env.integer("LOGIN_FAILURE_WINDOW", 900, minimum=1),
                max_backoff=env.integer("LOGIN_MAX_BACKOFF", 900, minimum=1),
                hash_threads=env.integer("PASSWORD_HASH_THREADS", 1, minimum=1, maximum=64),
                hash_queue=env.integer("PASSWORD_QUEUE", 16, minimum=0, maximum=10_000),
                hash_queue_per_ip=env.integer("PASSWORD_QUEUE_PER_IP", 4, minimum=1),
            ),
            secret_key=env.secret_key("SECRET_KEY"),
            secret_key_previous=(
                env.secret_key("SECRET_KEY_PREVIOUS")
                if env.raw("SECRET_KEY_PREVIOUS") is not None
                else None
            ),
            scopes=scopes,
            observability=ObservabilitySettings.from_env(env),
            rate_limits=RateLimitSettings(
                enabled=env.flag("RATE_LIMITS", default=True),
                per_ip=rate(env, "RATE_LIMIT_PER_IP", DEFAULT_RATE_PER_IP),
                per_client=rate(env, "RATE_LIMIT_PER_CLIENT", DEFAULT_RATE_PER_CLIENT),
            ),
        )


@lru_cache(maxsize=1)
def get_settings() -> AuthSettings:
    """The process's settings, read once (with `.env` when present)."""
    load_dotenv_file()
    return AuthSettings.from_env()


def cors_origins(env: EnvReader) -> tuple[str, ...]:
    """Exact origins only: a wildcard would hand every site a user's tokens."""
    origins = env.words("CORS_ORIGINS")
    for origin in origins:
        if not origin.startswith(("http://", "https://")) or "*" in origin:
            raise SettingsError(
                f"PORTCULLIS_CORS_ORIGINS lists exact origins like https://app.example.com, got {origin!r}"
            )
    return tuple(origin.rstrip("/") for origin in origins)


def rate(env: EnvReader, name: str, default: str) -> str:
    """A budget such as `1200/minute` or `50/second`."""
    text = env.text(name, default)
    try:
        return canonical_rate(text)
    except ValueError:
        raise SettingsError(
            f"PORTCULLIS_{name} is a number of requests per second, minute or hour, "
            f"like {default}; got {text!r}"
        ) from None


MAX_RATE = 10**9
"""More requests than any window could hold: a budget is at most this many."""
WINDOWS = {"second": 1, "minute": 60, "hour": 3600}
RATE = re.compile(r"(\d{1,10})/(second|minute|hour)")


@dataclass(frozen=True, slots=True)
class Rate:
    """A budget: `limit` requests in each window of `window` seconds."""

    limit: int
    window: int

    def __str__(self) -> str:
        unit = next(name for name, seconds in WINDOWS.items() if seconds == self.window)
        return f"{self.limit}/{unit}"


def canonical_rate(text: str) -> str:
    """`text` checked, in the one spelling budgets are stored and shown in."""
    return str(parse_rate(text))


def parse_rate(text: str) -> Rate:
    """`N/second`, `N/minute` or `N/hour`, N from 1 to MAX_RATE."""
    found = RATE.fullmatch(text.strip())
    if found is None or not 1 <= int(found.group(1)) <= MAX_RATE:
        raise ValueError(f"not a rate: {text!r}")
    return Rate(int(found.group(1)), WINDOWS[found.group(2)])


def account_audiences(env: EnvReader) -> tuple[str, ...]:
    audiences = env.words("ACCOUNT_AUDIENCES", (DEFAULT_AUDIENCE,))
    if not audiences:
        raise SettingsError(
            "PORTCULLIS_ACCOUNT_AUDIENCES lists the audiences whose tokens may use the "
            "account routes, e.g. posts"
        )
    return audiences
