"""OAuth clients: registration, updates and authentication.

`ClientService` manages clients (the command line's `client` commands) and
proves a client's credentials against its row; `CachedClientStore` proves them
against recent copies of rows, for the token endpoint. Both are client stores
of the protocol core.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlsplit

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from portcullis_auth.db.models import OAuthClient, utcnow
from portcullis_auth.records import LOOPBACK_HOSTS, Client
from portcullis_auth.repositories.clients import ClientRepository, client_record
from portcullis_auth.security.secrets import (
    generate_client_id,
    generate_secret,
    hash_secret,
    require_client_id,
    require_strong_secret,
    secret_matches,
)
from portcullis_auth.services.revocations import RevocationService
from portcullis_auth.settings import DEFAULT_AUDIENCE, canonical_rate

CLIENT_CACHE_SECONDS = 5.0
"""How long the token endpoint may answer from a copy of a client's row."""

DEVICE_CODE = "urn:ietf:params:oauth:grant-type:device_code"
GRANT_TYPES = ("authorization_code", DEVICE_CODE, "password", "client_credentials", "refresh_token")
# Grants that need a client able to keep a secret.
CONFIDENTIAL_ONLY_GRANTS = frozenset({"password", "client_credentials"})
MAX_SECRET_OVERLAP = timedelta(days=30)
"""How long an old secret may keep working after a rotation, at most."""


class ClientConfigError(ValueError):
    """A client configuration that cannot work; the message says why."""


@dataclass(frozen=True, slots=True)
class ClientSpec:
    name: str
    grant_types: Sequence[str]
    scopes: Sequence[str]
    default_scopes: Sequence[str] = ()
    audiences: Sequence[str] = (DEFAULT_AUDIENCE,)
    redirect_uris: Sequence[str] = ()
    public: bool = False
    first_party: bool = False
    personal_access: bool = False
    introspect: bool = False
    rate_limit: str | None = None
    """Requests per endpoint (`100/second`); None: the service's default."""


@dataclass(frozen=True, slots=True)
class CreatedClient:
    client: OAuthClient
    secret: str | None
    """The secret made for it, shown once; only its hash is stored. None for a public
    client, and for a secret the caller gave (never echoed)."""


def acceptable_redirect_uri(uri: str) -> bool:
    """A redirect URI a client may register: absolute, no fragment (RFC 6749 §3.1.2), and
    https unless it is a loopback URI or a native app's private-use scheme (RFC 8252 §7)."""
    try:
        parts = urlsplit(uri)
        parts.port  # noqa: B018 - a malformed port raises ValueError
    except ValueError:
        return False
    if not parts.scheme or parts.fragment or "@" in parts.netloc:
        return False
    if parts.scheme == "https":
        return bool(parts.netloc)
    if parts.scheme == "http":
        return parts.hostname in LOOPBACK_HOSTS
    return "." in parts.scheme  # a reverse domain name: com.example.app:/callback


def checked_rate_limit(rate_limit: str | None) -> str | None:
    """A client's own budget, `N/second`, `N/minute` or `N/hour`; None or "default":
    the service's."""
    if rate_limit is None or rate_limit == "default":
        return None
    try:
        return canonical_rate(rate_limit)
    except ValueError:
        raise ClientConfigError(
            f"a rate limit is a number of requests per second, minute or hour, like "
            f"100/second; got {rate_limit!r}"
        ) from None


def validate_client(
    *,
    grant_types: Sequence[str],
    scopes: Sequence[str],
    default_scopes: Sequence[str],
    audiences: Sequence[str],
    public: bool,
    known_scopes: frozenset[str],
    redirect_uris: Sequence[str] = (),
    personal_access: bool = False,
) -> None:
    unknown_grants = set(grant_types) - set(GRANT_TYPES)
    if unknown_grants:
        raise ClientConfigError(f"unknown grant types: {', '.join(sorted(unknown_grants))}")
    if public and CONFIDENTIAL_ONLY_GRANTS & set(grant_types):
        raise ClientConfigError("a public client can use neither password nor client_credentials")
    if not personal_access and not set(grant_types) - {"refresh_token"}:
        raise ClientConfigError(
            "the client could get no token: give it a grant that starts one "
            "(authorization_code, device_code, password or client_credentials)"
        )
    if "authorization_code" in grant_types and not redirect_uris:
        raise ClientConfigError("the authorization_code grant needs at least one --redirect-uri")
    for uri in redirect_uris:
        if not acceptable_redirect_uri(uri):
            raise ClientConfigError(
                f"redirect URI {uri!r} must be https, a loopback http URI, or an app's own "
                "scheme (com.example.app:/callback), and hold no fragment"
            )
    unknown_scopes = set(scopes) - known_scopes
    if unknown_scopes:
        raise ClientConfigError(f"unknown scopes: {', '.join(sorted(unknown_scopes))}")
    if not set(default_scopes) <= set(scopes):
        raise ClientConfigError("default scopes must be among the client's scopes")
    if not audiences:
        raise ClientConfigError("a client needs at least one audience")


class ClientService:
    def __init__(self, session: AsyncSession) -> None:
        self._clients = ClientRepository(session)

    async def create(
        self,
        spec: ClientSpec,
        known_scopes: frozenset[str],
        *,
        client_id: str | None = None,
        secret: str | None = None,
    ) -> CreatedClient:
        """Register a client under a new random id and secret, or under the id and secret
        given (an operator's own, so that a deployment can hand them out beforehand)."""
        if client_id is not None:
            require_client_id(client_id)
        if secret is not None:
            if spec.public:
                raise ClientConfigError("a public client has no secret")
            require_strong_secret(secret)
        validate_client(
            grant_types=spec.grant_types,
            scopes=spec.scopes,
            default_scopes=spec.default_scopes,
            audiences=spec.audiences,
            public=spec.public,
            known_scopes=known_scopes,
            redirect_uris=spec.redirect_uris,
            personal_access=spec.personal_access,
        )
        rate_limit = checked_rate_limit(spec.rate_limit)
        made = None if spec.public or secret is not None else generate_secret()
        secret = secret or made
        client = OAuthClient(
            id=client_id or generate_client_id(),
            name=spec.name,
            secret_hash=None if secret is None else hash_secret(secret),
            grant_types=list(dict.fromkeys(spec.grant_types)),
            scopes=list(dict.fromkeys(spec.scopes)),
            default_scopes=list(dict.fromkeys(spec.default_scopes)),
            audiences=list(dict.fromkeys(spec.audiences)),
            redirect_uris=list(spec.redirect_uris),
            first_party=spec.first_party,
            personal_access=spec.personal_access,
            introspect=spec.introspect,
            rate_limit=rate_limit,
            created_at=utcnow(),
            revoked_at=None,
        )
        await self._clients.add(client)
        return CreatedClient(client, made)

    async def get(self, client_id: str) -> OAuthClient | None:
        return await self._clients.get(client_id)

    async def list(self) -> list[OAuthClient]:
        return await self._clients.list()

    async def find_by_name(self, name: str) -> OAuthClient | None:
        return await self._clients.find_by_name(name)

    async def update(
        self,
        client: OAuthClient,
        known_scopes: frozenset[str],
        *,
        rate_limit: str | None = None,
        **changes: object,
    ) -> None:
        """Each change given (not None) replaces that field; `rate_limit` "default"
        gives the client the service's budget back."""
        for name, value in changes.items():
            if value is not None:
                setattr(client, name, value)
        if rate_limit is not None:
            client.rate_limit = checked_rate_limit(rate_limit)
        validate_client(
            grant_types=client.grant_types,
            scopes=client.scopes,
            default_scopes=client.default_scopes,
            audiences=client.audiences,
            public=client.is_public,
            known_scopes=known_scopes,
            redirect_uris=client.redirect_uris,
            personal_access=client.personal_access,
        )
        await self._clients.save(client)

    async def rotate_secret(
        self, client: OAuthClient, overlap: timedelta, secret: str | None = None
    ) -> str | None:
        """A new secret for a confidential client: the one given, or a new random one
        (returned, to be shown once; None when given). The current secret keeps working
        for `overlap` (none: it stops at once), so deployments can move over."""
        if client.is_public:
            raise ClientConfigError("a public client has no secret to rotate")
        if client.revoked_at is not None:
            raise ClientConfigError(f"client {client.id} is revoked")
        if overlap < timedelta(0) or overlap > MAX_SECRET_OVERLAP:
            raise ClientConfigError(
                f"the overlap must be between 0 and {MAX_SECRET_OVERLAP.days} days"
            )
        new = require_strong_secret(secret) if secret is not None else generate_secret()
        made = None if secret is not None else new
        if overlap:
            client.previous_secret_hash = client.secret_hash
            client.previous_secret_expires_at = utcnow() + overlap
        else:
            client.previous_secret_hash = client.previous_secret_expires_at = None
        client.secret_hash = hash_secret(new)
        await self._clients.save(client)
        return made

    async def revoke(self, client: OAuthClient, revocations: RevocationService) -> None:
        """The client can no longer authenticate, and every token issued to it is revoked."""
        client.revoked_at = client.revoked_at or utcnow()
        await self._clients.save(client)
        await revocations.revoke_client(client.id, reason="client_revoked")

    async def authenticate(self, client_id: str, secret: str | None) -> Client | None:
        """The client these credentials prove, read now; None when they prove none."""
        return _proven(await self.find(client_id), secret)

    async def find(self, client_id: str) -> Client | None:
        """The active client, read now."""
        return await self._clients.get_active_record(client_id)


def secret_proves(client: OAuthClient, secret: str) -> bool:
    """Whether `secret` authenticates `client`: its current secret, or the previous one
    during a rotation's overlap."""
    return _proven(client_record(client), secret) is not None


def _proven(client: Client | None, secret: str | None) -> Client | None:
    """`client`, if `secret` proves it (a public client: no secret at all); the secret
    before the last rotation proves it too until its overlap ends."""
    if client is None:
        return None
    if client.secret_hash is None:
        return None if secret else client
    if not secret:
        return None
    if secret_matches(secret, client.secret_hash):
        return client
    previous, until = client.previous_secret_hash, client.previous_secret_expires_at
    if previous is not None and until is not None and utcnow() < until:
        return client if secret_matches(secret, previous) else None
    return None


class CachedClientStore:
    """Proves credentials against a recent copy of the client's row.

    When there is no copy, or the copy does not prove them, the row is read again
    (by the cache, outside any request's session) before the answer is no: perhaps
    the secret has just changed.
    """

    def __init__(self, cache: ClientCache) -> None:
        self._cache = cache

    async def find(self, client_id: str) -> Client | None:
        cached = self._cache.cached(client_id)
        return cached if cached is not None else await self._cache.read(client_id)

    async def authenticate(self, client_id: str, secret: str | None) -> Client | None:
        cached = self._cache.cached(client_id)
        if cached is None:
            return _proven(await self._cache.read(client_id), secret)
        proven = _proven(cached, secret)
        if proven is not None:
            return proven
        # Perhaps a new secret: read the row again, in a read begun after this request
        # was (one already under way may predate the change).
        return _proven(await self._cache.read(client_id, join=False), secret)


class ClientCache:
    """Client rows the token endpoint read lately, each copy kept at most `ttl` seconds.

    Safe to answer from: no access token is recorded unless, as its record is
    written, its client's row is still at the version the copy was read at
    (`OAuthClient.version`), so a revoked client, a new secret or a narrowed
    scope holds for every token requested after the change has committed. What
    a copy can hold back, for at most `ttl`, is a change that allows more: a
    grant type or a scope just added is refused until then. The copies
    are records, never live rows. Rows are read in a session of the cache's
    own, closed at once: a request waiting for its token's record to be written
    holds no database connection the writer might need.
    """

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        ttl: float = CLIENT_CACHE_SECONDS,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`clock`: the seconds a copy's age is measured in; a parameter so that tests can
        move it on instead of waiting."""
        self._sessionmaker = sessionmaker
        self._ttl = ttl
        self._max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, Client]] = OrderedDict()
        self._reading: dict[str, asyncio.Task[Client | None]] = {}
        """The newest read of each row under way."""
        self._tasks: set[asyncio.Task[Client | None]] = set()

    def cached(self, client_id: str) -> Client | None:
        """The copy read less than `ttl` ago, if any."""
        entry = self._entries.get(client_id)
        if entry is None:
            return None
        read_at, client = entry
        if self._clock() - read_at >= self._ttl:
            del self._entries[client_id]
            return None
        return client

    async def read(self, client_id: str, *, join: bool = True) -> Client | None:
        """The row as it is now (None if there is none), kept as the new copy.

        `join`: share a read of the row already under way, so that a copy expiring
        under load costs one read, not one per waiting request. Without it a read
        of its own begins, which later ones join."""
        reading = self._reading.get(client_id)
        if not join or reading is None:
            reading = asyncio.create_task(self._read(client_id))
            self._reading[client_id] = reading
            self._tasks.add(reading)  # held: the loop keeps only weak references
            reading.add_done_callback(self._tasks.discard)
        # Shielded: a request that gives up does not cancel the read the others wait for.
        return await asyncio.shield(reading)

    async def _read(self, client_id: str) -> Client | None:
        this_read = asyncio.current_task()
        try:
            async with self._sessionmaker() as session:
                client = await ClientRepository(session).get_active_record(client_id)
        finally:
            # Only the newest read, with nothing forgotten since it began, is kept.
            newest = self._reading.get(client_id) is this_read
            if newest:
                del self._reading[client_id]
        if newest:
            self._entries.pop(client_id, None)
            if client is not None:
                self._entries[client_id] = (self._clock(), client)
                while len(self._entries) > self._max_entries:
                    self._entries.popitem(last=False)  # the oldest read
        return client

    def forget(self, client_id: str) -> None:
        """Drop the copy, and any read under way: the next read begins afresh."""
        self._entries.pop(client_id, None)
        self._reading.pop(client_id, None)
