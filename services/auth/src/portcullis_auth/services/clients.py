"""OAuth clients: registration, updates and authentication."""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from portcullis_auth.db.models import OAuthClient, utcnow
from portcullis_auth.oauth2.client_auth import ClientCredentials
from portcullis_auth.oauth2.errors import InvalidClientError
from portcullis_auth.repositories.clients import ClientRepository
from portcullis_auth.security.secrets import (
    generate_client_id,
    generate_secret,
    hash_secret,
    secret_matches,
)
from portcullis_auth.settings import DEFAULT_AUDIENCE

CLIENT_CACHE_SECONDS = 5.0
"""How long the token endpoint may answer from a copy of a client's row."""

GRANT_TYPES = ("password", "client_credentials", "refresh_token")
# Grants that need a client able to keep a secret.
CONFIDENTIAL_ONLY_GRANTS = frozenset({"password", "client_credentials"})


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


@dataclass(frozen=True, slots=True)
class CreatedClient:
    client: OAuthClient
    secret: str | None
    """Shown once; only its hash is stored."""


def validate_client(
    *,
    grant_types: Sequence[str],
    scopes: Sequence[str],
    default_scopes: Sequence[str],
    audiences: Sequence[str],
    public: bool,
    known_scopes: frozenset[str],
) -> None:
    unknown_grants = set(grant_types) - set(GRANT_TYPES)
    if unknown_grants:
        raise ClientConfigError(f"unknown grant types: {', '.join(sorted(unknown_grants))}")
    if public and CONFIDENTIAL_ONLY_GRANTS & set(grant_types):
        raise ClientConfigError("a public client can use neither password nor client_credentials")
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

    async def create(self, spec: ClientSpec, known_scopes: frozenset[str]) -> CreatedClient:
        validate_client(
            grant_types=spec.grant_types,
            scopes=spec.scopes,
            default_scopes=spec.default_scopes,
            audiences=spec.audiences,
            public=spec.public,
            known_scopes=known_scopes,
        )
        secret = None if spec.public else generate_secret()
        client = OAuthClient(
            id=generate_client_id(),
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
            created_at=utcnow(),
            revoked_at=None,
        )
        await self._clients.add(client)
        return CreatedClient(client, secret)

    async def get(self, client_id: str) -> OAuthClient | None:
        return await self._clients.get(client_id)

    async def list(self) -> list[OAuthClient]:
        return await self._clients.list()

    async def find_by_name(self, name: str) -> OAuthClient | None:
        return await self._clients.find_by_name(name)

    async def update(
        self, client: OAuthClient, known_scopes: frozenset[str], **changes: object
    ) -> None:
        for name, value in changes.items():
            if value is not None:
                setattr(client, name, value)
        validate_client(
            grant_types=client.grant_types,
            scopes=client.scopes,
            default_scopes=client.default_scopes,
            audiences=client.audiences,
            public=client.is_public,
            known_scopes=known_scopes,
        )
        await self._clients.save(client)

    async def revoke(self, client: OAuthClient) -> None:
        client.revoked_at = client.revoked_at or utcnow()
        await self._clients.save(client)

    async def authenticate(
        self, credentials: ClientCredentials, cache: ClientCache | None = None
    ) -> OAuthClient:
        """The client these credentials prove, or `invalid_client` (RFC 6749 §5.2).

        With a `cache`, a recent copy of the client's row may prove them; when there is
        none, or it does not, the row is read again (by the cache, outside this
        session) before the answer is no.
        """
        if cache is None:
            return _proven(await self._clients.get(credentials.client_id), credentials)
        cached = cache.cached(credentials.client_id)
        if cached is None:
            return _proven(await cache.read(credentials.client_id), credentials)
        try:
            return _proven(cached, credentials)
        except InvalidClientError:
            # Perhaps a new secret: read the row again, in a read begun after this
            # request was (one already under way may predate the change).
            return _proven(await cache.read(credentials.client_id, join=False), credentials)


def _proven(client: OAuthClient | None, credentials: ClientCredentials) -> OAuthClient:
    """`client`, if these credentials prove it; else `invalid_client`."""
    basic = credentials.used_basic
    if client is None or client.revoked_at is not None:
        raise InvalidClientError("client authentication failed", used_basic=basic)
    if client.secret_hash is None:
        if credentials.client_secret:
            raise InvalidClientError("a public client has no secret", used_basic=basic)
        return client
    if not credentials.client_secret or not secret_matches(
        credentials.client_secret, client.secret_hash
    ):
        raise InvalidClientError("client authentication failed", used_basic=basic)
    return client


class ClientCache:
    """Client rows the token endpoint read lately, each copy kept at most `ttl` seconds.

    Safe to answer from: no access token is recorded unless, as its record is
    written, its client's row is still at the version the copy was read at
    (`OAuthClient.version`), so a revoked client, a new secret or a narrowed
    scope holds for every token requested after the change has committed. What
    a copy can hold back, for at most `ttl`, is a change that allows more: a
    grant type or a scope just added is refused until then. The copies
    are detached rows, only ever read. Rows are read in a session of the cache's
    own, closed at once: a request waiting for its token's record to be written
    holds no database connection the writer might need.
    """

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        ttl: float = CLIENT_CACHE_SECONDS,
        max_entries: int = 10_000,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._ttl = ttl
        self._max_entries = max_entries
        self._entries: OrderedDict[str, tuple[float, OAuthClient]] = OrderedDict()
        self._reading: dict[str, asyncio.Task[OAuthClient | None]] = {}
        """The newest read of each row under way."""
        self._tasks: set[asyncio.Task[OAuthClient | None]] = set()

    def cached(self, client_id: str) -> OAuthClient | None:
        """The copy read less than `ttl` ago, if any."""
        entry = self._entries.get(client_id)
        if entry is None:
            return None
        read_at, client = entry
        if time.monotonic() - read_at >= self._ttl:
            del self._entries[client_id]
            return None
        return client

    async def read(self, client_id: str, *, join: bool = True) -> OAuthClient | None:
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

    async def _read(self, client_id: str) -> OAuthClient | None:
        this_read = asyncio.current_task()
        try:
            async with self._sessionmaker() as session:
                client = await ClientRepository(session).get(client_id)
        finally:
            # Only the newest read, with nothing forgotten since it began, is kept.
            newest = self._reading.get(client_id) is this_read
            if newest:
                del self._reading[client_id]
        if newest:
            self._entries.pop(client_id, None)
            if client is not None:
                self._entries[client_id] = (time.monotonic(), client)
                while len(self._entries) > self._max_entries:
                    self._entries.popitem(last=False)  # the oldest read
        return client

    def forget(self, client_id: str) -> None:
        """Drop the copy, and any read under way: the next read begins afresh."""
        self._entries.pop(client_id, None)
        self._reading.pop(client_id, None)
