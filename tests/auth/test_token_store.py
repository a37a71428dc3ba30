"""The token store's contract, every case against both implementations.

Postgres runs the statements on asyncpg directly, each committing on its own;
the embedded SQLite runs them through SQLAlchemy in the caller's transaction.
Both must find the same records and write all of a rotation or none of it.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from portcullis_auth.db.direct import DirectPostgres
from portcullis_auth.db.migrate import upgrade_async
from portcullis_auth.db.models import AccessToken, Grant, OAuthClient, RefreshToken, User, utcnow
from portcullis_auth.repositories.postgres_token_store import PostgresTokenStore
from portcullis_auth.repositories.sql_token_store import SqlTokenStore
from portcullis_auth.repositories.token_store import (
    AccessTokenRow,
    RefreshTokenRow,
    Rotation,
    TokenStore,
)
from portcullis_shared.sql import create_engine, create_sessionmaker

OpenStore = Callable[[], AbstractAsyncContextManager[TokenStore]]
"""A store on a connection of its own; what it wrote is committed when it closes."""


@dataclass
class Backend:
    engine: AsyncEngine
    open_store: OpenStore


@asynccontextmanager
async def postgres_backend(database_url: str) -> AsyncIterator[Backend]:
    engine = create_engine(database_url)
    database = DirectPostgres(engine, max_size=25)

    @asynccontextmanager
    async def open_store() -> AsyncIterator[TokenStore]:
        async with database.connection() as connection:
            yield PostgresTokenStore(connection)

    try:
        yield Backend(engine, open_store)
    finally:
        await database.close()
        await engine.dispose()


@asynccontextmanager
async def sqlite_backend(folder: Path) -> AsyncIterator[Backend]:
    url = f"sqlite+aiosqlite:///{folder / 'auth.db'}"
    await upgrade_async(url)
    engine = create_engine(url)
    sessionmaker = create_sessionmaker(engine)

    @asynccontextmanager
    async def open_store() -> AsyncIterator[TokenStore]:
        async with sessionmaker() as session:
            yield SqlTokenStore(session)
            await session.commit()

    try:
        yield Backend(engine, open_store)
    finally:
        await engine.dispose()


@pytest.fixture(params=["postgres", "sqlite"])
async def backend(
    request: pytest.FixtureRequest, database_url: str, tmp_path: Path
) -> AsyncIterator[Backend]:
    opened = (
        postgres_backend(database_url) if request.param == "postgres" else sqlite_backend(tmp_path)
    )
    async with opened as running:
        yield running


@dataclass
class Family:
    client_id: str
    user_id: uuid.UUID | None
    family_id: uuid.UUID
    token_id: uuid.UUID
    token_hash: str


async def seed_family(
    engine: AsyncEngine, *, with_user: bool = True, disabled: bool = False, admin: bool = False
) -> Family:
    """A client, a user, a family and its first refresh token, committed."""
    now = utcnow()
    client_id = f"client_{uuid.uuid4().hex[:20]}"
    user_id = uuid.uuid4() if with_user else None
    family_id, token_id = uuid.uuid4(), uuid.uuid4()
    token_hash = uuid.uuid4().hex * 2
    async with create_sessionmaker(engine)() as session:
        session.add(
            OAuthClient(
                id=client_id,
                name="c",
                secret_hash=None,
                grant_types=["password", "refresh_token"],
                scopes=["read-posts"],
                default_scopes=[],
                audiences=["posts"],
                redirect_uris=[],
                created_at=now,
                revoked_at=None,
            )
        )
        if user_id is not None:
            session.add(
                User(
                    id=user_id,
                    email=f"{user_id}@example.com",
                    password_hash="x",
                    is_admin=admin,
                    created_at=now,
                    disabled_at=now if disabled else None,
                )
            )
        await session.flush()
        session.add(
            Grant(
                id=family_id,
                client_id=client_id,
                user_id=user_id,
                grant_type="password",
                scopes=["read-posts", "write-posts"],
                audience="posts",
                created_at=now,
                expires_at=now + timedelta(days=90),
                revoked_at=None,
            )
        )
        await session.flush()
        session.add(
            RefreshToken(
                id=token_id,
                token_hash=token_hash,
                grant_id=family_id,
                created_at=now,
                expires_at=now + timedelta(days=30),
            )
        )
        await session.commit()
    return Family(client_id, user_id, family_id, token_id, token_hash)


def rotation_of(family: Family) -> tuple[RefreshTokenRow, AccessTokenRow]:
    now = utcnow()
    successor = RefreshTokenRow(
        id=uuid.uuid4(),
        token_hash=uuid.uuid4().hex * 2,
        created_at=now,
        expires_at=now + timedelta(days=30),
    )
    jti = uuid.uuid4()
    record = AccessTokenRow(
        jti=jti,
        sid=family.family_id,
        client_id=family.client_id,
        user_id=family.user_id,
        scopes=["read-posts"],
        audience="posts",
        kid="k",
        created_at=now,
        expires_at=now + timedelta(minutes=15),
    )
    return successor, record


async def count(engine: AsyncEngine, statement: object) -> int:
    async with engine.connect() as connection:
        return int((await connection.execute(statement)).scalar_one())  # type: ignore[call-overload]


async def written(engine: AsyncEngine, family: Family) -> tuple[int, int, int]:
    """(used tokens, tokens, access records) of the family."""
    return (
        await count(
            engine,
            select(func.count()).where(
                RefreshToken.grant_id == family.family_id, RefreshToken.used_at.is_not(None)
            ),
        ),
        await count(engine, select(func.count()).where(RefreshToken.grant_id == family.family_id)),
        await count(engine, select(func.count()).where(AccessToken.sid == family.family_id)),
    )


async def change(engine: AsyncEngine, statement: object) -> None:
    async with engine.begin() as connection:
        await connection.execute(statement)  # type: ignore[call-overload]


# --- finding ---------------------------------------------------------------------


async def test_an_unknown_hash_finds_nothing(backend: Backend) -> None:
    async with backend.open_store() as store:
        assert await store.find_refresh_token("0" * 64) is None


@pytest.mark.parametrize(
    ("with_user", "disabled", "admin"),
    [(True, False, False), (True, True, True), (False, False, False)],
    ids=["user", "disabled-admin", "no-user"],
)
async def test_a_token_is_found_with_its_family_and_user(
    backend: Backend, with_user: bool, disabled: bool, admin: bool
) -> None:
    family = await seed_family(backend.engine, with_user=with_user, disabled=disabled, admin=admin)
    async with backend.open_store() as store:
        found = await store.find_refresh_token(family.token_hash)
    assert found is not None
    assert found.token.id == family.token_id
    assert found.token.family_id == family.family_id
    assert found.token.used_at is None
    assert found.token.revoked_at is None
    assert found.token.expires_at.tzinfo is not None
    assert found.token.created_at < found.token.expires_at
    assert found.family.id == family.family_id
    assert found.family.client_id == family.client_id
    assert found.family.grant_type == "password"
    assert found.family.scopes == ("read-posts", "write-posts")
    assert found.family.audience == "posts"
    assert found.family.expires_at > found.token.expires_at
    assert found.family.revoked_at is None
    if with_user:
        assert found.user is not None
        assert (found.user.id, found.user.is_admin, found.user.active) == (
            family.user_id,
            admin,
            not disabled,
        )
    else:
        assert found.family.user_id is None
        assert found.user is None


# --- rotating --------------------------------------------------------------------


async def test_a_rotation_writes_the_used_token_its_successor_and_the_record(
    backend: Backend,
) -> None:
    family = await seed_family(backend.engine)
    successor, record = rotation_of(family)
    async with backend.open_store() as store:
        assert await store.rotate_and_record(family.token_id, successor, record, 1) is Rotation.DONE
    assert await written(backend.engine, family) == (1, 2, 1)
    async with backend.open_store() as store:
        found = await store.find_refresh_token(successor.token_hash)
    assert found is not None
    assert found.token.used_at is None
    assert found.family.id == family.family_id


async def test_a_used_token_rotates_no_more_and_writes_nothing(backend: Backend) -> None:
    family = await seed_family(backend.engine)
    async with backend.open_store() as store:
        first = await store.rotate_and_record(family.token_id, *rotation_of(family), 1)
    async with backend.open_store() as store:
        second = await store.rotate_and_record(family.token_id, *rotation_of(family), 1)
    assert (first, second) == (Rotation.DONE, Rotation.ALREADY_USED)
    assert await written(backend.engine, family) == (1, 2, 1)


@pytest.mark.parametrize("what", ["token", "family"])
async def test_a_revoked_token_or_family_rotates_not(backend: Backend, what: str) -> None:
    family = await seed_family(backend.engine)
    now = utcnow()
    await change(
        backend.engine,
        update(RefreshToken).where(RefreshToken.id == family.token_id).values(revoked_at=now)
        if what == "token"
        else update(Grant).where(Grant.id == family.family_id).values(revoked_at=now),
    )
    async with backend.open_store() as store:
        rotation = await store.rotate_and_record(family.token_id, *rotation_of(family), 1)
    assert rotation is Rotation.ALREADY_USED
    assert await written(backend.engine, family) == (0, 1, 0)


@pytest.mark.parametrize("change_made", ["new version", "revoked"])
async def test_a_changed_client_rotates_not_and_writes_nothing(
    backend: Backend, change_made: str
) -> None:
    family = await seed_family(backend.engine)
    values = (
        {"version": OAuthClient.version + 1}
        if change_made == "new version"
        else {"revoked_at": utcnow()}
    )
    await change(
        backend.engine,
        update(OAuthClient).where(OAuthClient.id == family.client_id).values(**values),
    )
    async with backend.open_store() as store:
        rotation = await store.rotate_and_record(family.token_id, *rotation_of(family), 1)
    assert rotation is Rotation.CLIENT_CHANGED
    assert await written(backend.engine, family) == (0, 1, 0)


async def test_of_concurrent_rotations_exactly_one_wins(backend: Backend) -> None:
    family = await seed_family(backend.engine)

    async def rotate() -> Rotation:
        async with backend.open_store() as store:
            return await store.rotate_and_record(family.token_id, *rotation_of(family), 1)

    rotations = await asyncio.gather(*(rotate() for _ in range(10)))
    assert sorted(r.value for r in rotations) == sorted(
        [Rotation.DONE.value] + [Rotation.ALREADY_USED.value] * 9
    )
    assert await written(backend.engine, family) == (1, 2, 1)


# --- recording -------------------------------------------------------------------


async def test_a_batch_records_only_tokens_whose_client_is_unchanged(backend: Backend) -> None:
    family = await seed_family(backend.engine)
    current, stale = rotation_of(family)[1], rotation_of(family)[1]
    unknown = replace(rotation_of(family)[1], client_id="client_unknown", user_id=None)
    async with backend.open_store() as store:
        recorded = await store.record_access_tokens([(current, 1), (stale, 0), (unknown, 1)])
    assert recorded == {current.jti}
    assert await written(backend.engine, family) == (0, 1, 1)


async def test_an_empty_batch_records_nothing(backend: Backend) -> None:
    async with backend.open_store() as store:
        assert await store.record_access_tokens([]) == set()
