"""Typed settings of the posts service, read once from `PORTCULLIS_*` variables."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache

from portcullis_shared.environment import EnvReader, load_dotenv_file
from portcullis_shared.plugin import GuardConfig


@dataclass(frozen=True, slots=True)
class ResourceSettings:
    guard: GuardConfig
    """How tokens are verified: issuer, audience, JWKS URL, revocation list."""
    database_url: str
    """The posts database: postgresql+asyncpg://… or sqlite+aiosqlite:///…"""
    host: str = "127.0.0.1"
    """Address the posts service binds to."""
    port: int = 8001
    """Port the posts service listens on."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ResourceSettings:
        env = EnvReader(environ)
        return cls(
            guard=GuardConfig.from_env(environ),
            database_url=env.url(
                "DATABASE_URL", schemes=("postgresql+asyncpg", "sqlite+aiosqlite")
            ),
            host=env.text("HOST", "127.0.0.1"),
            port=env.integer("PORT", 8001, minimum=1, maximum=65535),
        )


@lru_cache(maxsize=1)
def get_settings() -> ResourceSettings:
    load_dotenv_file()
    return ResourceSettings.from_env()
