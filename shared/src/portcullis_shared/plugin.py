"""The token guard as a Litestar plugin: mount it and routes require a valid token.

    app = Litestar(
        route_handlers=[...],
        plugins=[PortcullisGuard(GuardConfig.from_env())],
    )

Every route then needs a bearer token that verifies against the auth
service's JWKS, names this service in `aud`, and is not revoked; mark a
route `opt={"exclude_from_auth": True}` (or list its path in
`GuardConfig.exclude`) to make it public. A handler names `principal:
Principal` to be handed the token's principal (it is also `request.user`).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from litestar import Litestar
from litestar.config.app import AppConfig
from litestar.connection import ASGIConnection
from litestar.di import Provide
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult
from litestar.middleware.base import DefineMiddleware
from litestar.plugins import InitPlugin
from litestar.types import ASGIApp
from redis.asyncio import Redis

from portcullis_shared.environment import EnvReader, SettingsError
from portcullis_shared.errors import (
    BearerError,
    GuardUnavailableError,
    InvalidTokenError,
    MissingTokenError,
    make_bearer_error_handler,
)
from portcullis_shared.guards import provide_principal
from portcullis_shared.jwks import JWKSCache, KeySource
from portcullis_shared.metrics import TOKEN_CHECKS_UNAVAILABLE
from portcullis_shared.principal import Principal
from portcullis_shared.request import PortcullisRequest
from portcullis_shared.revocation import (
    DEFAULT_PREFIX,
    RedisRevocationList,
    RevocationList,
)
from portcullis_shared.revocation_feed import FollowedRevocationList
from portcullis_shared.verifier import ASYMMETRIC_ALGORITHMS, MAX_LEEWAY, TokenVerifier


@dataclass(frozen=True, slots=True)
class GuardConfig:
    issuer: str
    """The auth service's URL: tokens must carry it as `iss`."""
    audience: str
    """This service's name: tokens must carry it as `aud`."""
    jwks_url: str | None = None
    """Where the auth service publishes its keys (the only place keys come from)."""
    redis_url: str | None = None
    """The revocation list; None only when the guard is handed a list of its own."""
    redis_prefix: str = DEFAULT_PREFIX
    revocation_feed: bool = True
    """Follow the list's pub/sub feed into a local filter that spares the Redis round
    trip for tokens it proves unrevoked (see revocation_feed.py); off: ask Redis always."""
    algorithms: tuple[str, ...] = ASYMMETRIC_ALGORITHMS
    """Algorithms accepted, whatever a token says."""
    leeway: int = 30
    """Clock leeway for exp/iat/nbf, seconds (at most 60)."""
    jwks_cooldown: float = 10.0
    """Least time between two JWKS fetches caused by unknown kids, seconds."""
    jwks_max_stale: float = 86_400.0
    """How long cached keys keep working while the auth service is unreachable."""
    realm: str | None = None
    """`realm` of the WWW-Authenticate challenge; defaults to the audience."""
    exclude: tuple[str, ...] = ("^/healthz$", "^/readyz$", "^/schema")
    """Path patterns that need no token."""

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str] | None = None,
        *,
        require_redis: bool = True,
        audience: str | None = None,
    ) -> GuardConfig:
        """`require_redis=False` only for a host that hands the guard its own list.
        `audience`: the service's own name, when it has one (the posts service's is
        `posts`); PORTCULLIS_AUDIENCE still overrides it, and without either the
        setting is required."""
        env = EnvReader(environ)
        algorithms = env.words("ALGORITHMS", ASYMMETRIC_ALGORITHMS)
        for algorithm in algorithms:
            if algorithm not in ASYMMETRIC_ALGORITHMS:
                raise SettingsError(
                    f"PORTCULLIS_ALGORITHMS may list only {', '.join(ASYMMETRIC_ALGORITHMS)}"
                )
        redis_url = env.raw("REDIS_URL")
        if redis_url is None and require_redis:
            raise SettingsError(
                "PORTCULLIS_REDIS_URL is not set: the guard reads the revocation list there"
            )
        return cls(
            issuer=env.url("ISSUER", schemes=("http", "https")),
            audience=env.text("AUDIENCE", audience),
            jwks_url=env.url("JWKS_URL", schemes=("http", "https")),
            redis_url=None
            if redis_url is None
            else env.url("REDIS_URL", schemes=("redis", "rediss", "unix")),
            redis_prefix=env.text("REDIS_PREFIX", DEFAULT_PREFIX),
            revocation_feed=env.flag("REVOCATION_FEED", default=True),
            algorithms=algorithms,
            leeway=env.integer("LEEWAY", 30, minimum=0, maximum=MAX_LEEWAY),
            jwks_cooldown=env.integer("JWKS_COOLDOWN", 10, minimum=1),
            jwks_max_stale=env.integer("JWKS_MAX_STALE", 86_400, minimum=0),
        )


def bearer_token(connection: ASGIConnection[Any, Any, Any, Any]) -> str:
    """RFC 6750 §2.1: the token from `Authorization: Bearer` only (never the query).

    Read from the raw headers (the first Authorization line, as `connection.headers`
    would give it) without building Litestar's header map for every request."""
    header = next(
        (value for name, value in connection.scope["headers"] if name.lower() == b"authorization"),
        None,
    )
    if not header:
        raise MissingTokenError("a bearer token is required")
    scheme, _, token = header.decode("latin-1").strip().partition(" ")
    if scheme.lower() != "bearer":
        raise MissingTokenError("a bearer token is required")
    token = token.strip()
    if not token or " " in token:
        raise InvalidTokenError("malformed bearer token")
    return token


class PortcullisGuard(InitPlugin):
    """Verifies bearer tokens for every route of the app it is mounted on."""

    def __init__(
        self,
        config: GuardConfig,
        *,
        keys: KeySource | None = None,
        revocations: RevocationList | None = None,
        jwks_clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`jwks_clock`: what the JWKS cache measures max-age, cooldown and max-stale by
        (a parameter so that tests can move it on instead of waiting)."""
        self.config = config
        self._jwks: JWKSCache | None = None
        if keys is None:
            if config.jwks_url is None:
                raise ValueError("GuardConfig.jwks_url is required unless keys are given")
            self._jwks = JWKSCache(
                config.jwks_url,
                cooldown=config.jwks_cooldown,
                max_stale=config.jwks_max_stale,
                clock=jwks_clock,
            )
            keys = self._jwks
        self._redis: Redis | None = None
        self._followed: FollowedRevocationList | None = None
        if revocations is None:
            if config.redis_url is None:
                # An empty in-process list nobody writes to would accept revoked tokens.
                raise ValueError("GuardConfig.redis_url is required unless revocations are given")
            self._redis = Redis.from_url(
                config.redis_url, socket_timeout=1, socket_connect_timeout=1
            )
            if config.revocation_feed:
                self._followed = FollowedRevocationList(self._redis, config.redis_prefix)
                revocations = self._followed
            else:
                revocations = RedisRevocationList(self._redis, config.redis_prefix)
        self.revocations = revocations
        self.verifier = TokenVerifier(
            keys,
            issuer=config.issuer,
            audience=config.audience,
            algorithms=config.algorithms,
            leeway=config.leeway,
        )

    @property
    def holds_keys(self) -> bool:
        """Whether tokens can be verified: the JWKS is loaded (keys given: always). A
        readiness probe reports not ready until then."""
        return self._jwks is None or self._jwks.has_keys

    @property
    def realm(self) -> str:
        return self.config.realm or self.config.audience

    async def authenticate(self, token: str) -> Principal:
        """Verify a token and check the revocation list; raise a BearerError if refused."""
        try:
            claims = await self.verifier.verify(token)
        except GuardUnavailableError:
            TOKEN_CHECKS_UNAVAILABLE.labels("signing_keys").inc()
            raise
        try:
            revoked = await self.revocations.is_revoked(claims)
        except GuardUnavailableError:
            TOKEN_CHECKS_UNAVAILABLE.labels("revocation_list").inc()
            raise
        if revoked:
            raise InvalidTokenError("token revoked")
        return Principal.from_claims(claims)

    @asynccontextmanager
    async def lifespan(self, _: Litestar) -> AsyncIterator[None]:
        if self._jwks is not None:
            await self._jwks.start()
        if self._followed is not None:
            await self._followed.start()
        try:
            yield
        finally:
            if self._followed is not None:
                await self._followed.close()
            if self._jwks is not None:
                await self._jwks.close()
            if self._redis is not None:
                await self._redis.aclose()

    def on_app_init(self, app_config: AppConfig) -> AppConfig:
        app_config.middleware.append(
            DefineMiddleware(BearerAuthMiddleware, guard=self, exclude=list(self.config.exclude))
        )
        app_config.exception_handlers = {
            **app_config.exception_handlers,
            BearerError: make_bearer_error_handler(self.realm),
        }
        app_config.lifespan = [*app_config.lifespan, self.lifespan]
        app_config.dependencies = {
            "principal": Provide(provide_principal),
            **app_config.dependencies,
        }
        if app_config.request_class is None:
            app_config.request_class = PortcullisRequest  # malformed JSON bodies: 400, not 500
        return app_config


class BearerAuthMiddleware(AbstractAuthenticationMiddleware):
    def __init__(
        self, app: ASGIApp, guard: PortcullisGuard, exclude: list[str] | None = None
    ) -> None:
        super().__init__(app, exclude=exclude)
        self._guard = guard

    async def authenticate_request(
        self, connection: ASGIConnection[Any, Any, Any, Any]
    ) -> AuthenticationResult:
        principal = await self._guard.authenticate(bearer_token(connection))
        return AuthenticationResult(user=principal, auth=principal)
