"""Typed settings of the posts service, read once from `PORTCULLIS_*` variables."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache

from portcullis_shared.client_ip import Network
from portcullis_shared.environment import EnvReader, load_dotenv_file
from portcullis_shared.observability import ObservabilitySettings
from portcullis_shared.plugin import GuardConfig
from portcullis_shared.sql import DEFAULT_POOL_SIZE


@dataclass(frozen=True, slots=True)
class PasswordProxySettings:
    auth_url: str
    """The auth service's URL as this service reaches it."""
    client_id: str
    """The first-party password client the proxy speaks as."""
    client_secret: str = field(repr=False)
    """Its secret: added here, never sent to the browser."""

    @classmethod
    def from_env(cls, env: EnvReader) -> PasswordProxySettings | None:
        if env.raw("PASSWORD_CLIENT_ID") is None:
            return None
        return cls(
            auth_url=env.url("AUTH_URL", schemes=("http", "https")),
            client_id=env.text("PASSWORD_CLIENT_ID"),
            client_secret=env.text("PASSWORD_CLIENT_SECRET"),
        )


AUDIENCE = "posts"
"""The posts service's `aud`, unless PORTCULLIS_AUDIENCE says otherwise."""


@dataclass(frozen=True, slots=True)
class ResourceSettings:
    guard: GuardConfig
    """How tokens are verified: issuer, audience, JWKS URL, revocation list."""
    database_url: str
    """The posts database: postgresql+asyncpg://… or sqlite+aiosqlite:///…"""
    database_pool_size: int = DEFAULT_POOL_SIZE
    """Connections kept open (Postgres); half as many again at peaks."""
    host: str = "127.0.0.1"
    """Address the posts service binds to."""
    port: int = 8001
    """Port the posts service listens on."""
    trusted_proxies: tuple[Network, ...] = ()
    """Peers whose `X-Forwarded-For` is believed (CIDRs): the proxy forwards the caller's real address."""
    proxy: PasswordProxySettings | None = None
    """The first-party login proxy; None leaves its routes answering 503."""
    playground: bool = False
    """Serve the token playground at /playground."""
    playground_client_id: str | None = None
    """The public client the playground signs users in with (authorization code + PKCE)."""
    observability: ObservabilitySettings = field(default_factory=ObservabilitySettings)
    """Log format and tracing."""
    metrics: bool = False
    """Serve Prometheus metrics at /metrics (no token needed: expose it to the scraper only)."""

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, *, embedded: bool = False
    ) -> ResourceSettings:
        """`embedded`: hosted by `portcullis dev`, which hands the guard its revocation list."""
        env = EnvReader(environ)
        return cls(
            guard=GuardConfig.from_env(environ, require_redis=not embedded, audience=AUDIENCE),
            database_url=env.url(
                "DATABASE_URL", schemes=("postgresql+asyncpg", "sqlite+aiosqlite")
            ),
            database_pool_size=env.integer("DATABASE_POOL_SIZE", DEFAULT_POOL_SIZE, minimum=1),
            host=env.text("HOST", "127.0.0.1"),
            port=env.integer("PORT", 8001, minimum=1, maximum=65535),
            trusted_proxies=env.networks("TRUSTED_PROXIES"),
            proxy=PasswordProxySettings.from_env(env),
            playground=env.flag("PLAYGROUND", default=False),
            playground_client_id=env.raw("PLAYGROUND_CLIENT_ID"),
            metrics=env.flag("METRICS", default=False),
            observability=ObservabilitySettings.from_env(env),
        )


@lru_cache(maxsize=1)
def get_settings() -> ResourceSettings:
    load_dotenv_file()
    return ResourceSettings.from_env()
