"""What the running auth service holds for its lifetime: engine, Redis, keys."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Coroutine
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from dataclasses import dataclass
from typing import Any

from litestar.datastructures import State
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from portcullis_auth import events
from portcullis_auth.db.direct import DirectPostgres
from portcullis_auth.keys.keyring import KeyRing
from portcullis_auth.keys.sealing import KeySealer
from portcullis_auth.oauth2.audit import AuditEvent
from portcullis_auth.oauth2.grants.base import GrantContext
from portcullis_auth.oauth2.ports import LoginThrottle
from portcullis_auth.repositories.postgres_token_store import PostgresTokenStore
from portcullis_auth.repositories.token_store import TokenStore
from portcullis_auth.revocation.publisher import (
    LocalRevocationFollower,
    MemoryRevocationSink,
    RevocationPublisher,
    RevocationSink,
    check_eviction_policy,
)
from portcullis_auth.security.login_throttle import MemoryLoginThrottle, RedisLoginThrottle
from portcullis_auth.security.passwords import PasswordHasher
from portcullis_auth.security.rate_limits import Endpoint, RateLimiter
from portcullis_auth.services.authorization import AuthorizationService
from portcullis_auth.services.clients import CachedClientStore, ClientCache
from portcullis_auth.services.devices import DeviceService
from portcullis_auth.services.token_records import AccessTokenRecorder, batch_writer
from portcullis_auth.services.tokens import TokenService
from portcullis_auth.services.unit_of_work import UnitOfWork
from portcullis_auth.services.users import UserService
from portcullis_auth.settings import AuthSettings, DatabaseSettings
from portcullis_shared.revocation import MemoryRevocationList
from portcullis_shared.sql import (
    SessionsIfUsed,
    create_engine,
    create_sessionmaker,
    is_sqlite,
)
from portcullis_shared.verifier import TokenVerifier

logger = logging.getLogger("portcullis.auth")


@dataclass(slots=True)
class AuthRuntime:
    settings: AuthSettings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    redis: Redis | None
    keyring: KeyRing
    hasher: PasswordHasher
    throttle: LoginThrottle
    """Password attempts, per (username, IP) and per IP."""
    code_throttle: LoginThrottle
    """Device user codes typed on the verification page, per (sign-in session, IP) and
    per IP (RFC 8628 §5.1): counted apart from password attempts."""
    publisher: RevocationPublisher | None
    """Copies revocations to Redis and keeps the copy whole (None without Redis)."""
    revocation_sink: RevocationSink
    """Where committed revocations are published."""
    own_token_verifier: TokenVerifier
    """Checks tokens presented to the auth service itself, against its own keys: only
    tokens for one of `account_audiences` open its routes."""
    follower: LocalRevocationFollower | None
    """Without Redis: keeps the in-process list level with the revocations table."""
    clients: ClientCache
    """Copies of client rows the token endpoint may authenticate against."""
    access_token_recorder: AccessTokenRecorder
    """Writes the records of client-credentials tokens in batches."""
    request_sessions: SessionsIfUsed
    """The token endpoint's sessions, which most of its requests never use."""
    direct_postgres: DirectPostgres | None
    """Postgres only: connections for the token endpoint's hottest statements
    (`repositories/postgres_token_store.py`)."""
    rate_limiter: RateLimiter
    """Request budgets per endpoint, per client address and per client."""

    @classmethod
    def create(
        cls, settings: AuthSettings, local_revocations: MemoryRevocationList | None = None
    ) -> AuthRuntime:
        """`local_revocations`: the in-process list to publish to when there is no Redis."""
        engine, direct = _connections(settings.database)
        sessionmaker = create_sessionmaker(engine)
        redis = (
            Redis.from_url(
                settings.redis.url,
                socket_timeout=2,
                socket_connect_timeout=2,
                health_check_interval=30,
            )
            if settings.redis.url
            else None
        )
        throttle, code_throttle = (
            _throttle(redis, settings, "login-failures"),
            _throttle(redis, settings, "device-code-failures"),
        )
        tokens = settings.tokens
        keyring = KeyRing(
            sessionmaker,
            KeySealer(settings.secret_key, settings.secret_key_previous),
            max_token_ttl=tokens.max_token_ttl,
        )
        local_sink = MemoryRevocationSink(local_revocations or MemoryRevocationList())
        publisher = (
            RevocationPublisher(redis, sessionmaker, settings.redis.key_prefix)
            if redis is not None
            else None
        )
        return cls(
            settings=settings,
            engine=engine,
            sessionmaker=sessionmaker,
            redis=redis,
            keyring=keyring,
            hasher=PasswordHasher(
                threads=settings.login.hash_threads,
                queue=settings.login.hash_queue,
                queue_per_caller=settings.login.hash_queue_per_ip,
            ),
            throttle=throttle,
            code_throttle=code_throttle,
            publisher=publisher,
            revocation_sink=publisher or local_sink,
            own_token_verifier=TokenVerifier(
                keyring,
                issuer=tokens.issuer,
                audience=tokens.account_audiences,
                leeway=tokens.leeway,
            ),
            follower=None if publisher else LocalRevocationFollower(sessionmaker, local_sink),
            clients=ClientCache(sessionmaker),
            access_token_recorder=AccessTokenRecorder(batch_writer(engine, direct)),
            request_sessions=SessionsIfUsed(sessionmaker),
            direct_postgres=direct,
            rate_limiter=RateLimiter(settings.rate_limits, redis, settings.redis.key_prefix),
        )

    def unit_of_work(self, session: AsyncSession) -> UnitOfWork:
        """One request's writes on `session`; revocations published to this runtime's list."""
        return UnitOfWork(session, self.settings.tokens, self.revocation_sink.publish)

    def token_service(self, uow: UnitOfWork, store: TokenStore | None = None) -> TokenService:
        return TokenService(
            uow.session,
            self.settings.tokens,
            self.keyring,
            uow.revocations,
            store=store,
            recorder=self.access_token_recorder,
        )

    def token_store(self) -> AbstractAsyncContextManager[TokenStore | None]:
        """Postgres: the token store on one direct connection, taken only if a statement
        needs it. Elsewhere None: the token service then works through its session."""
        if self.direct_postgres is None:
            return nullcontext()
        return _postgres_token_store(self.direct_postgres)

    def grant_context(self, uow: UnitOfWork, store: TokenStore | None) -> GrantContext:
        """The services of one token request, as the protocol core's ports."""
        tokens = self.token_service(uow, store)
        return GrantContext(
            clients=CachedClientStore(self.clients),
            client_rate_limit=self.rate_limiter.for_clients(Endpoint.TOKEN),
            users=UserService(uow.session, self.hasher),
            throttle=self.throttle,
            grants=tokens,
            codes=AuthorizationService(uow.session, uow.revocations),
            devices=DeviceService(uow.session, self.settings.tokens.device_poll_interval),
            issuer=tokens,
            audit=report,
            scopes=self.settings.scopes,
            refresh_grace=self.settings.tokens.refresh_grace,
        )

    async def background_tasks(self) -> list[Coroutine[Any, Any, None]]:
        """Bring the revocation list level once, then the loops that keep it level."""
        if self.publisher is not None:
            return [self.publisher.run_forever()]
        if self.follower is not None:
            try:
                await self.follower.catch_up()
            except Exception as exc:  # noqa: BLE001 - the loop retries every second
                logger.warning("revocations not loaded at startup: %s", type(exc).__name__)
            return [self.follower.run_forever()]
        return []

    async def check_redis_policy(self) -> None:
        if self.redis is not None:
            await check_eviction_policy(self.redis)

    async def close(self) -> None:
        await self.rate_limiter.close()
        if self.redis is not None:
            await self.redis.aclose()
        if self.direct_postgres is not None:
            await self.direct_postgres.close()
        await self.engine.dispose()
        self.hasher.close()


def report(event: AuditEvent) -> None:
    """The protocol core's audit hook: one log line an event, each counted (`metrics.py`)."""
    events.emit(event.name, logging.INFO, **event.fields)


@asynccontextmanager
async def _postgres_token_store(database: DirectPostgres) -> AsyncIterator[TokenStore]:
    async with database.connection() as connection:
        yield PostgresTokenStore(connection)


def _connections(database: DatabaseSettings) -> tuple[AsyncEngine, DirectPostgres | None]:
    """The engine and, on Postgres, the direct pool, within one budget: `pool_size`
    connections at most for the token endpoint's direct statements, which carry most
    of the load, and half as many, with no overflow, for everything else. So the
    process never holds more than one and a half `pool_size`, as documented."""
    if is_sqlite(database.url):
        return create_engine(database.url), None
    engine = create_engine(database.url, pool_size=max(1, database.pool_size // 2), max_overflow=0)
    return engine, DirectPostgres(engine, max_size=database.pool_size)


def runtime_of(state: State) -> AuthRuntime:
    """The runtime the app's lifespan stored in its state."""
    runtime: AuthRuntime = state.runtime
    return runtime


def _throttle(redis: Redis | None, settings: AuthSettings, counter: str) -> LoginThrottle:
    if redis is None:
        return MemoryLoginThrottle(settings.login)
    return RedisLoginThrottle(redis, settings.login, settings.redis.key_prefix, counter=counter)
