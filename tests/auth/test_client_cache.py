"""The token endpoint answers from copies of client rows, records tokens in batches,
and holds no pooled connection while it waits for something slow.

A copy may only ever allow less than the row: every token is recorded only
while its client's row is unrevoked and at the version the copy was read at.
Each test first gets a token, so the client's row is cached, then changes the row.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from portcullis_auth.db.direct import DirectPostgres
from portcullis_auth.db.models import OAuthClient, utcnow
from portcullis_auth.http.app import create_app
from portcullis_auth.repositories.clients import ClientRepository
from portcullis_auth.repositories.token_store import AccessTokenRow
from portcullis_auth.security.passwords import PasswordHasher
from portcullis_auth.security.secrets import hash_secret
from portcullis_auth.services.clients import ClientCache, ClientService
from portcullis_auth.services.revocations import RevocationService
from portcullis_auth.services.token_records import (
    WRITERS,
    AccessTokenRecorder,
    WriteBatch,
    batch_writer,
)
from portcullis_auth.services.users import UserService
from portcullis_auth.settings import AuthSettings
from portcullis_shared.sql import create_engine, create_sessionmaker
from tests.auth.conftest import ISSUER, USER_PASSWORD, Seed, auth_environ
from tests.auth.helpers import (
    assert_oauth_error,
    client_credentials_grant,
    password_grant,
    query,
    refresh_grant,
    unverified_claims,
)
from tests.clock import FakeClock


async def _update_client(seed: Seed, client_id: str, **changes: Any) -> None:
    async def work(session: AsyncSession) -> None:
        service = ClientService(session)
        client = await service.get(client_id)
        assert client is not None
        await service.update(client, seed.settings.scopes.names, **changes)

    await seed.run(work)


async def _revoke_client(seed: Seed, client_id: str) -> None:
    """As `portcullis client revoke` does it."""

    async def work(session: AsyncSession) -> None:
        service = ClientService(session)
        client = await service.get(client_id)
        assert client is not None
        await service.revoke(client, RevocationService(session, seed.settings.tokens))

    await seed.run(work)


@pytest.fixture
async def machine(seed: Seed) -> tuple[str, str]:
    """A confidential client allowed every grant: its id and secret."""
    client_id, secret = await seed.client()
    assert secret is not None
    return client_id, secret


async def _recorded_tokens(settings: AuthSettings, client_id: str) -> set[str]:
    rows = await query(
        settings, "SELECT jti FROM access_tokens WHERE client_id = :client", client=client_id
    )
    return {str(row["jti"]) for row in rows}


async def test_a_revoked_client_gets_no_token_though_its_row_was_cached(
    http: AsyncTestClient[Litestar], seed: Seed, settings: AuthSettings, machine: tuple[str, str]
) -> None:
    client_id, secret = machine
    assert (await client_credentials_grant(http, client_id, secret)).status_code == 200
    await _revoke_client(seed, client_id)

    refused = await client_credentials_grant(http, client_id, secret)

    assert_oauth_error(refused, 401, "invalid_client")
    assert len(await _recorded_tokens(settings, client_id)) == 1


async def test_a_new_secret_works_at_once_and_the_old_one_stops(
    http: AsyncTestClient[Litestar], seed: Seed
) -> None:
    client_id, old_secret = await seed.client()
    assert old_secret is not None
    assert (await client_credentials_grant(http, client_id, old_secret)).status_code == 200
    new_secret = "n" * 43
    await _update_client(seed, client_id, secret_hash=hash_secret(new_secret))

    assert_oauth_error(
        await client_credentials_grant(http, client_id, old_secret), 401, "invalid_client"
    )
    assert (await client_credentials_grant(http, client_id, new_secret)).status_code == 200


async def test_a_narrowed_scope_applies_to_the_very_next_token(
    http: AsyncTestClient[Litestar], seed: Seed, settings: AuthSettings, machine: tuple[str, str]
) -> None:
    client_id, secret = machine
    first = await client_credentials_grant(http, client_id, secret, scope="write-posts")
    assert first.status_code == 200
    await _update_client(seed, client_id, scopes=["read-posts"], default_scopes=["read-posts"])

    refused = await client_credentials_grant(http, client_id, secret, scope="write-posts")

    assert_oauth_error(refused, 400, "invalid_scope")
    assert await _recorded_tokens(settings, client_id) == {
        unverified_claims(first.json()["access_token"])["jti"]
    }


async def test_a_refresh_started_on_a_stale_copy_rotates_exactly_once(
    http: AsyncTestClient[Litestar], seed: Seed, settings: AuthSettings, machine: tuple[str, str]
) -> None:
    """The first attempt is rolled back when its record is refused; the retry, on the
    row read afresh, rotates the token once and answers 200."""
    await seed.user()
    client_id, secret = machine
    login = await password_grant(http, client_id, secret)
    assert login.status_code == 200
    sid = unverified_claims(login.json()["access_token"])["sid"]
    await _update_client(seed, client_id, name="renamed")  # a new version, nothing taken away

    rotated = await refresh_grant(http, client_id, secret, login.json()["refresh_token"])

    assert rotated.status_code == 200, rotated.text
    rows = await query(
        settings,
        "SELECT used_at FROM refresh_tokens WHERE grant_id = :sid ORDER BY created_at",
        sid=uuid.UUID(sid),
    )
    assert [row["used_at"] is not None for row in rows] == [True, False]
    again = await refresh_grant(http, client_id, secret, rotated.json()["refresh_token"])
    assert again.status_code == 200, again.text


async def test_a_revoked_client_cannot_refresh_though_its_row_was_cached(
    http: AsyncTestClient[Litestar], seed: Seed, settings: AuthSettings, machine: tuple[str, str]
) -> None:
    """Only the client's row is revoked here, its refresh tokens left live: the rotation
    statement's own check of the row refuses the record, the rotation is rolled back,
    and the row read afresh refuses the client."""
    await seed.user()
    client_id, secret = machine
    login = await password_grant(http, client_id, secret)
    assert login.status_code == 200
    sid = unverified_claims(login.json()["access_token"])["sid"]

    async def revoke_row_only(session: AsyncSession) -> None:
        client = await ClientService(session).get(client_id)
        assert client is not None
        client.revoked_at = utcnow()
        await session.flush()

    await seed.run(revoke_row_only)

    refused = await refresh_grant(http, client_id, secret, login.json()["refresh_token"])

    assert_oauth_error(refused, 401, "invalid_client")
    assert len(await _recorded_tokens(settings, client_id)) == 1
    unused = await query(
        settings, "SELECT used_at FROM refresh_tokens WHERE grant_id = :sid", sid=uuid.UUID(sid)
    )
    assert [row["used_at"] for row in unused] == [None]


async def test_a_password_login_on_a_stale_copy_still_succeeds(
    http: AsyncTestClient[Litestar], seed: Seed, machine: tuple[str, str]
) -> None:
    await seed.user()
    client_id, secret = machine
    assert (await client_credentials_grant(http, client_id, secret)).status_code == 200
    await _update_client(seed, client_id, name="renamed")

    assert (await password_grant(http, client_id, secret)).status_code == 200


async def test_concurrent_client_credentials_tokens_are_each_recorded(
    http: AsyncTestClient[Litestar], settings: AuthSettings, machine: tuple[str, str]
) -> None:
    client_id, secret = machine

    answers = await asyncio.gather(
        *(client_credentials_grant(http, client_id, secret) for _ in range(40))
    )

    assert [answer.status_code for answer in answers] == [200] * 40
    issued = {unverified_claims(answer.json()["access_token"])["jti"] for answer in answers}
    assert len(issued) == 40
    assert await _recorded_tokens(settings, client_id) == issued


def _record(client_id: str) -> AccessTokenRow:
    now = utcnow()
    jti = uuid.uuid4()
    return AccessTokenRow(
        jti=jti,
        sid=jti,
        client_id=client_id,
        user_id=None,
        scopes=["read-posts"],
        audience="posts",
        kid="k",
        created_at=now,
        expires_at=now + timedelta(minutes=15),
    )


@asynccontextmanager
async def _batch_writer(url: str, direct: bool) -> AsyncIterator[WriteBatch]:
    """The recorder's writes on Postgres (one statement a batch, on asyncpg), or as
    SQLite makes them (one SQLAlchemy statement a record)."""
    engine = create_engine(url)
    database = DirectPostgres(engine, max_size=WRITERS) if direct else None
    try:
        yield batch_writer(engine, database)
    finally:
        if database is not None:
            await database.close()
        await engine.dispose()


@pytest.mark.parametrize("direct", [True, False], ids=["batch", "one-by-one"])
async def test_the_recorder_writes_only_records_whose_client_version_holds(
    seed: Seed, settings: AuthSettings, direct: bool
) -> None:
    client_id, _ = await seed.client()
    async with _batch_writer(settings.database.url, direct) as write_batch:
        recorder = AccessTokenRecorder(write_batch)
        current, stale, unknown = _record(client_id), _record(client_id), _record("client_gone")
        written = await asyncio.wait_for(
            asyncio.gather(
                recorder.record(current, 1), recorder.record(stale, 0), recorder.record(unknown, 1)
            ),
            timeout=5,
        )

    assert list(written) == [True, False, False]
    assert await _recorded_tokens(settings, client_id) == {str(current.jti)}


async def test_a_record_added_while_every_writer_is_busy_is_still_written(
    seed: Seed, settings: AuthSettings
) -> None:
    client_id, _ = await seed.client()
    started = asyncio.Queue[None]()
    committed = asyncio.Event()

    async with _batch_writer(settings.database.url, direct=True) as write_batch:

        async def slow_write(batch: Sequence[tuple[AccessTokenRow, int]]) -> set[uuid.UUID]:
            started.put_nowait(None)
            written = await write_batch(batch)
            await committed.wait()  # a slow commit, until the test lets it end
            return written

        recorder = AccessTokenRecorder(slow_write)
        first = []
        for _ in range(WRITERS):  # one batch per writer
            first.append(asyncio.create_task(recorder.record(_record(client_id), 1)))
            await asyncio.wait_for(started.get(), timeout=5)
        # No writer is free and none may start: a writer that finishes must look again.
        adding = asyncio.create_task(recorder.record(_record(client_id), 1))
        await asyncio.sleep(0)  # one turn: the record is added, and waits
        assert not adding.done()
        committed.set()
        late = await asyncio.wait_for(adding, timeout=5)
        assert await asyncio.gather(*first) == [True] * WRITERS
    assert late is True


@pytest.mark.parametrize("direct", [True, False], ids=["batch", "one-by-one"])
async def test_the_recorder_fails_every_waiting_request_when_the_database_does(
    direct: bool,
) -> None:
    async with _batch_writer(
        "postgresql+asyncpg://postgres@127.0.0.1:9/unreachable", direct
    ) as write_batch:
        recorder = AccessTokenRecorder(write_batch)
        results = await asyncio.wait_for(
            asyncio.gather(
                *(recorder.record(_record("c"), 1) for _ in range(3)), return_exceptions=True
            ),
            timeout=10,
        )
    assert all(isinstance(result, (DBAPIError, OSError)) for result in results), results


async def test_copies_expire_and_the_oldest_read_goes_first(
    seed: Seed, settings: AuthSettings
) -> None:
    clock = FakeClock(100.0)
    a, b, c = [(await seed.client())[0] for _ in range(3)]
    engine = create_engine(settings.database.url)
    cache = ClientCache(create_sessionmaker(engine), ttl=5, max_entries=2, clock=clock)
    try:
        assert cache.cached(a) is None
        for client_id in (a, b, c):  # over the limit: a, read first, goes
            read = await cache.read(client_id)
            assert read is not None
            assert read.id == client_id
        assert await cache.read("client_unknown") is None
    finally:
        await engine.dispose()
    assert cache.cached(a) is None
    assert cache.cached(b) is not None
    assert cache.cached(c) is not None
    clock.advance(5)
    assert cache.cached(b) is None
    assert cache.cached(c) is None


class _CountedReads:
    """ClientRepository.get, counted, each read held until `release` is set."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        self.release = asyncio.Event()
        self._counted = asyncio.Condition()
        real = ClientRepository.get

        async def get(repository: ClientRepository, client_id: str) -> OAuthClient | None:
            async with self._counted:
                self.count += 1
                self._counted.notify_all()
            await self.release.wait()
            return await real(repository, client_id)

        monkeypatch.setattr(ClientRepository, "get", get)

    async def started(self, count: int) -> None:
        """Wait until `count` reads have begun; fail after 5 s."""
        try:
            async with asyncio.timeout(5), self._counted:
                await self._counted.wait_for(lambda: self.count >= count)
        except TimeoutError:
            pytest.fail(f"{self.count} reads began, not {count}")


async def test_an_expired_copy_under_load_is_read_once(
    seed: Seed, settings: AuthSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    client_id, _ = await seed.client()
    reads = _CountedReads(monkeypatch)
    engine = create_engine(settings.database.url)
    cache = ClientCache(create_sessionmaker(engine))
    try:
        waiting = asyncio.gather(*(cache.read(client_id) for _ in range(20)))
        await reads.started(1)  # by then all twenty have asked
        reads.release.set()
        copies = await asyncio.wait_for(waiting, timeout=5)
        assert reads.count == 1
        assert {copy.id for copy in copies if copy is not None} == {client_id}
        # A read that must not predate the request (a secret that failed) reads again.
        await cache.read(client_id, join=False)
        assert reads.count == 2
    finally:
        await engine.dispose()


async def test_a_read_under_way_when_a_copy_is_forgotten_is_not_kept(
    seed: Seed, settings: AuthSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The token endpoint forgets a copy when its client changed under a request: a
    read begun before that must not put an old copy back, nor serve the retry."""
    client_id, _ = await seed.client()
    reads = _CountedReads(monkeypatch)
    engine = create_engine(settings.database.url)
    cache = ClientCache(create_sessionmaker(engine))
    try:
        before = asyncio.create_task(cache.read(client_id))
        await reads.started(1)
        cache.forget(client_id)
        after = asyncio.create_task(cache.read(client_id))
        await reads.started(2)
        assert reads.count == 2  # the read after forget did not join the one before
        reads.release.set()
        await asyncio.wait_for(asyncio.gather(before, after), timeout=5)
        assert cache.cached(client_id) is not None  # the newer read's copy
        reads.release.clear()
        stale = asyncio.create_task(cache.read(client_id))
        await reads.started(3)
        cache.forget(client_id)
        reads.release.set()
        await asyncio.wait_for(stale, timeout=5)
        assert cache.cached(client_id) is None
    finally:
        await engine.dispose()


async def test_a_cold_cache_under_load_does_not_starve_the_record_writers(
    database_url: str, redis_url: str, redis_prefix: str
) -> None:
    """One pooled connection, twenty requests for a client not yet cached: were a
    request to hold a connection while its record waits for a writer, the writer would
    wait for the pool and every request would end in 503 after the pool's timeout."""
    settings = AuthSettings.from_env(
        auth_environ(database_url, redis_url, redis_prefix, database_pool_size="1")
    )
    seed = Seed(settings)
    await seed.signing_key()
    client_id, secret = await seed.client()
    assert secret is not None
    async with AsyncTestClient(app=create_app(settings), base_url=ISSUER) as http:
        answers = await asyncio.wait_for(
            asyncio.gather(*(client_credentials_grant(http, client_id, secret) for _ in range(20))),
            timeout=4,  # under the pool's 5 s timeout
        )
    assert [answer.status_code for answer in answers] == [200] * 20


async def test_a_client_changing_under_every_attempt_gets_503_and_no_token(
    http: AsyncTestClient[Litestar],
    seed: Seed,
    settings: AuthSettings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Stands in for a client edited between each read and its record: the endpoint
    tries again once on the row read afresh, then gives up with 503, never a 500."""
    client_id, secret = await seed.client()
    assert secret is not None
    attempts: list[int] = []

    async def always_changed(_: AccessTokenRecorder, record: AccessTokenRow, version: int) -> bool:
        attempts.append(version)
        return False

    monkeypatch.setattr(AccessTokenRecorder, "record", always_changed)

    answer = await client_credentials_grant(http, client_id, secret)

    assert_oauth_error(answer, 503, "temporarily_unavailable")
    assert answer.headers["retry-after"] == "1"
    assert len(attempts) == 2
    assert await _recorded_tokens(settings, client_id) == set()


async def test_a_login_holds_no_connection_while_its_password_is_verified(
    seed: Seed, settings: AuthSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Logins queue for the hashing thread, a quarter of a second each: meanwhile no
    pooled connection may be held for them."""
    await seed.user()
    engine = create_engine(settings.database.url)
    held_during_verify: list[int] = []
    verify = PasswordHasher.verify

    async def counting_verify(
        self: PasswordHasher, password: str, stored: str | None, **options: Any
    ) -> object:
        held_during_verify.append(engine.pool.checkedout())  # type: ignore[attr-defined]
        return await verify(self, password, stored, **options)

    monkeypatch.setattr(PasswordHasher, "verify", counting_verify)
    try:
        async with create_sessionmaker(engine)() as session:
            users = UserService(session, PasswordHasher())
            user = await users.authenticate("ada@example.com", USER_PASSWORD)
    finally:
        await engine.dispose()
    assert user is not None
    assert held_during_verify == [0]


async def test_an_outdated_password_hash_is_replaced_at_login(
    http: AsyncTestClient[Litestar], seed: Seed, settings: AuthSettings, machine: tuple[str, str]
) -> None:
    """The user was read in a session of its own; the new hash is written in the
    request's, by id."""
    user_id = await seed.user()
    client_id, secret = machine
    weak = PasswordHash((Argon2Hasher(time_cost=1, memory_cost=8 * 1024),))
    engine = create_engine(settings.database.url)
    try:
        async with engine.begin() as connection:
            await connection.execute(
                text("UPDATE users SET password_hash = :hash WHERE id = :id"),
                {"hash": weak.hash(USER_PASSWORD), "id": uuid.UUID(user_id)},
            )
    finally:
        await engine.dispose()

    assert (await password_grant(http, client_id, secret)).status_code == 200

    rows = await query(
        settings, "SELECT password_hash FROM users WHERE id = :id", id=uuid.UUID(user_id)
    )
    stored = rows[0]["password_hash"]
    current = PasswordHash((Argon2Hasher(),))
    assert current.verify(USER_PASSWORD, stored)
    assert not current.current_hasher.check_needs_rehash(stored)
