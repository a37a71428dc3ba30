"""Purging ended rows: in batches, never touching what a live family or the sequence needs.

Rows are made through the real endpoints, then aged with SQL (the only way
to have rows a week old without waiting a week); the purge itself is the
real `services.purge.purge` and the real `portcullis purge` command.
"""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from click.testing import CliRunner
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from portcullis_auth.db.models import AuthorizationCode, DeviceAuthorization, SignInSession, utcnow
from portcullis_auth.services.purge import purge
from portcullis_auth.settings import AuthSettings
from portcullis_cli.main import main
from portcullis_shared.sql import create_engine, create_sessionmaker
from tests.auth.conftest import USER_PASSWORD, Seed, basic_auth

Http = AsyncTestClient[Litestar]
Client = tuple[str, str]
RETENTION = timedelta(days=7)


def ago(days: int) -> datetime:
    return datetime.now(UTC) - timedelta(days=days)


def claims_of(token: str) -> dict[str, Any]:
    segment = token.split(".")[1]
    payload: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    )
    return payload


async def sql(settings: AuthSettings, statement: str, **params: object) -> list[dict[str, Any]]:
    """Run one statement in its own committed transaction; its rows, if it returns any."""
    engine = create_async_engine(settings.database.url)
    try:
        async with engine.begin() as connection:
            result = await connection.execute(text(statement), params)
            return [dict(row) for row in result.mappings().all()] if result.returns_rows else []
    finally:
        await engine.dispose()


COUNTS = {
    table: f"SELECT count(*) AS n FROM {table}"  # noqa: S608 - fixed table names
    for table in (
        "grants",
        "refresh_tokens",
        "access_tokens",
        "revocations",
        "authorization_codes",
        "device_authorizations",
        "sign_in_sessions",
    )
}


async def count(settings: AuthSettings, table: str) -> int:
    rows = await sql(settings, COUNTS[table])
    return int(rows[0]["n"])


@dataclass
class Family:
    sid: str
    access_tokens: list[str]
    refresh_tokens: list[str]

    @property
    def current(self) -> str:
        return self.refresh_tokens[-1]


class Flows:
    def __init__(self, http: Http, client: Client) -> None:
        self.http = http
        self.client = client

    async def token(self, **data: str) -> Any:
        return await self.http.post("/oauth/token", data=data, headers=basic_auth(*self.client))

    async def login(self) -> Family:
        response = await self.token(
            grant_type="password", username="ada@example.com", password=USER_PASSWORD
        )
        assert response.status_code == 200, response.text
        body = response.json()
        return Family(
            claims_of(body["access_token"])["sid"], [body["access_token"]], [body["refresh_token"]]
        )

    async def rotate(self, family: Family) -> None:
        response = await self.token(grant_type="refresh_token", refresh_token=family.current)
        assert response.status_code == 200, response.text
        family.access_tokens.append(response.json()["access_token"])
        family.refresh_tokens.append(response.json()["refresh_token"])

    async def revoke(self, family: Family) -> None:
        response = await self.http.post(
            "/oauth/revoke", data={"token": family.current}, headers=basic_auth(*self.client)
        )
        assert response.status_code == 200, response.text


@dataclass
class Aged:
    """What `aged_rows` made: which families should survive a purge and which should go."""

    live: Family
    revoked_recently: Family
    revoked_long_ago: list[Family]
    expired_long_ago: list[Family]
    expired_recently: Family


@pytest.fixture
async def flows(http: Http, seed: Seed) -> Flows:
    await seed.user()
    client_id, secret = await seed.client(name="web", grant_types=("password", "refresh_token"))
    assert secret is not None
    return Flows(http, (client_id, secret))


@pytest.fixture
async def aged_rows(flows: Flows, settings: AuthSettings) -> Aged:
    """Families in every state, with timestamps set back as if time had passed."""
    live = await flows.login()
    await flows.rotate(live)  # its first refresh token is now used: reuse detection needs it
    revoked_long_ago = [await flows.login() for _ in range(4)]
    expired_long_ago = [await flows.login() for _ in range(2)]
    revoked_recently = await flows.login()
    expired_recently = await flows.login()
    for family in (*revoked_long_ago, revoked_recently):
        await flows.revoke(family)

    def ids(families: list[Family]) -> list[uuid.UUID]:
        return [uuid.UUID(f.sid) for f in families]

    # The live family began long ago and its first access token expired long ago.
    await sql(
        settings,
        "UPDATE grants SET created_at = :long_ago WHERE id = :sid",
        sid=uuid.UUID(live.sid),
        long_ago=ago(8),
    )
    await sql(
        settings,
        "UPDATE refresh_tokens SET created_at = :long_ago, used_at = :long_ago "
        "WHERE grant_id = :sid AND used_at IS NOT NULL",
        sid=uuid.UUID(live.sid),
        long_ago=ago(8),
    )
    await sql(
        settings,
        "UPDATE access_tokens SET expires_at = :long_ago WHERE jti = :jti",
        jti=uuid.UUID(claims_of(live.access_tokens[0])["jti"]),
        long_ago=ago(8),
    )
    # Families revoked long ago: grant and its revocation entry ended a week+ ago.
    await sql(
        settings,
        "UPDATE grants SET revoked_at = :long_ago WHERE id = ANY(:ids)",
        ids=ids(revoked_long_ago),
        long_ago=ago(8),
    )
    await sql(
        settings,
        "UPDATE access_tokens SET expires_at = :long_ago WHERE sid = ANY(:ids)",
        ids=ids(revoked_long_ago),
        long_ago=ago(8),
    )
    await sql(
        settings,
        "UPDATE revocations SET expires_at = :long_ago WHERE subject = ANY(:subjects)",
        subjects=[f.sid for f in revoked_long_ago],
        long_ago=ago(8),
    )
    # Families that ran out long ago, and one that ran out only yesterday.
    await sql(
        settings,
        "UPDATE grants SET expires_at = :long_ago WHERE id = ANY(:ids)",
        ids=ids(expired_long_ago),
        long_ago=ago(8),
    )
    await sql(
        settings,
        "UPDATE access_tokens SET expires_at = :long_ago WHERE sid = ANY(:ids)",
        ids=ids(expired_long_ago),
        long_ago=ago(8),
    )
    await sql(
        settings,
        "UPDATE grants SET expires_at = :recently WHERE id = :sid",
        sid=uuid.UUID(expired_recently.sid),
        recently=ago(1),
    )
    await sql(
        settings,
        "UPDATE access_tokens SET expires_at = :recently WHERE sid = :sid",
        sid=uuid.UUID(expired_recently.sid),
        recently=ago(1),
    )
    return Aged(live, revoked_recently, revoked_long_ago, expired_long_ago, expired_recently)


async def test_purge_deletes_ended_rows_in_batches_and_keeps_the_rest(
    settings: AuthSettings, aged_rows: Aged
) -> None:
    grants_before = await count(settings, "grants")
    refresh_before = await count(settings, "refresh_tokens")
    access_before = await count(settings, "access_tokens")
    revocations_before = await count(settings, "revocations")
    ended = [*aged_rows.revoked_long_ago, *aged_rows.expired_long_ago]
    ended_refresh = sum(len(f.refresh_tokens) for f in ended)
    # 1 (live's first) + 4 (revoked long ago) + 2 (expired long ago): all past retention.
    ended_access = 1 + len(ended)

    engine = create_engine(settings.database.url)
    try:
        counts = await purge(create_sessionmaker(engine), RETENTION, batch=2)
    finally:
        await engine.dispose()

    # More rows than one batch of 2 in every table: the purge went on until a short batch.
    assert counts == {
        "access_tokens": ended_access,
        "grants": len(ended),
        "revocations": 4,
        **NO_BROWSER_ROWS,
    }
    assert await count(settings, "grants") == grants_before - len(ended)
    assert await count(settings, "refresh_tokens") == refresh_before - ended_refresh
    assert await count(settings, "access_tokens") == access_before - ended_access
    assert await count(settings, "revocations") == revocations_before - 4
    left = {
        str(row["id"])
        for row in await sql(
            settings,
            "SELECT id FROM grants",
        )
    }
    assert left == {
        aged_rows.live.sid,
        aged_rows.revoked_recently.sid,
        aged_rows.expired_recently.sid,
    }
    # No refresh token was left without its family.
    orphans = await sql(
        settings,
        "SELECT r.id FROM refresh_tokens r LEFT JOIN grants g ON g.id = r.grant_id "
        "WHERE g.id IS NULL",
    )
    assert orphans == []
    # The recent revocation (and its entry) stays: retention counts from when a row ended.
    kept = await sql(
        settings,
        "SELECT id FROM revocations WHERE subject = :sid",
        sid=aged_rows.revoked_recently.sid,
    )
    assert len(kept) == 1

    # A second run finds nothing more.
    engine = create_engine(settings.database.url)
    try:
        again = await purge(create_sessionmaker(engine), RETENTION, batch=2)
    finally:
        await engine.dispose()
    assert again == {"access_tokens": 0, "grants": 0, "revocations": 0, **NO_BROWSER_ROWS}


NO_BROWSER_ROWS = {"authorization_codes": 0, "device_authorizations": 0, "sign_in_sessions": 0}
"""Tables these flows leave empty."""


async def test_expired_codes_device_requests_and_sign_ins_are_purged(
    settings: AuthSettings, seed: Seed
) -> None:
    user_id = uuid.UUID(await seed.user())
    client_id, _ = await seed.client(
        grant_types=("authorization_code",), redirect_uris=("https://a.example/cb",)
    )
    long_ago, now = utcnow() - RETENTION - timedelta(days=1), utcnow()

    async def rows(session: AsyncSession) -> None:
        for when in (long_ago, now):
            session.add(
                AuthorizationCode(
                    id=uuid.uuid4(),
                    code_hash=uuid.uuid4().hex * 2,
                    client_id=client_id,
                    user_id=user_id,
                    redirect_uri="https://a.example/cb",
                    scopes=[],
                    audience="posts",
                    code_challenge="c" * 43,
                    created_at=when,
                    expires_at=when + timedelta(seconds=60),
                    used_at=None,
                    grant_id=None,
                )
            )
            session.add(
                DeviceAuthorization(
                    id=uuid.uuid4(),
                    device_code_hash=uuid.uuid4().hex * 2,
                    user_code="BCDFGHJK",
                    client_id=client_id,
                    scopes=[],
                    audience="posts",
                    status="pending",
                    user_id=None,
                    interval=5,
                    last_polled_at=None,
                    created_at=when,
                    expires_at=when + timedelta(minutes=10),
                    grant_id=None,
                )
            )
            session.add(
                SignInSession(
                    id=uuid.uuid4(), token_hash=uuid.uuid4().hex * 2, user_id=user_id,
                    created_at=when, expires_at=when + timedelta(hours=8),
                )
            )  # fmt: skip

    await seed.run(rows)
    engine = create_engine(settings.database.url)
    try:
        counts = await purge(create_sessionmaker(engine), RETENTION, batch=2)
    finally:
        await engine.dispose()
    assert {name: counts[name] for name in NO_BROWSER_ROWS} == dict.fromkeys(NO_BROWSER_ROWS, 1)
    for table in NO_BROWSER_ROWS:
        assert await count(settings, table) == 1  # the live one stays


async def test_a_live_family_keeps_working_after_a_purge(
    flows: Flows, settings: AuthSettings, aged_rows: Aged
) -> None:
    live = aged_rows.live
    engine = create_engine(settings.database.url)
    try:
        await purge(create_sessionmaker(engine), RETENTION, batch=2)
    finally:
        await engine.dispose()

    # Its current refresh token still rotates...
    await flows.rotate(live)
    # ...and its oldest, used a week ago, is still known: presenting it is reuse.
    reused = await flows.token(grant_type="refresh_token", refresh_token=live.refresh_tokens[0])
    assert reused.status_code == 400
    assert reused.json()["error"] == "invalid_grant"
    grant = await sql(
        settings,
        "SELECT revoked_at FROM grants WHERE id = :sid",
        sid=uuid.UUID(live.sid),
    )
    assert grant[0]["revoked_at"] is not None, "reuse of a purged-around token went unnoticed"
    after = await flows.token(grant_type="refresh_token", refresh_token=live.current)
    assert after.status_code == 400
    assert after.json()["error"] == "invalid_grant"
    # A family revoked recently stays revoked (its rows were kept).
    recent = await flows.token(
        grant_type="refresh_token", refresh_token=aged_rows.revoked_recently.current
    )
    assert recent.status_code == 400


async def test_the_newest_revocation_row_is_kept_even_when_expired(
    flows: Flows, settings: AuthSettings
) -> None:
    families = [await flows.login() for _ in range(5)]
    for family in families:
        await flows.revoke(family)
    await sql(settings, "UPDATE revocations SET expires_at = :long_ago", long_ago=ago(8))
    newest = (
        await sql(
            settings,
            "SELECT max(id) AS id FROM revocations",
        )
    )[0]["id"]

    engine = create_engine(settings.database.url)
    try:
        counts = await purge(create_sessionmaker(engine), RETENTION, batch=2)
    finally:
        await engine.dispose()

    assert counts["revocations"] == 4
    left = await sql(
        settings,
        "SELECT id FROM revocations",
    )
    # Its id is the sequence number Redis is compared with: it must not go backwards.
    assert [row["id"] for row in left] == [newest]


async def test_nothing_within_retention_is_purged(flows: Flows, settings: AuthSettings) -> None:
    live = await flows.login()
    revoked = await flows.login()
    await flows.revoke(revoked)
    before = {t: await count(settings, t) for t in ("grants", "refresh_tokens", "access_tokens")}

    engine = create_engine(settings.database.url)
    try:
        counts = await purge(create_sessionmaker(engine), RETENTION, batch=2)
    finally:
        await engine.dispose()

    assert counts == {"access_tokens": 0, "grants": 0, "revocations": 0, **NO_BROWSER_ROWS}
    assert before == {t: await count(settings, t) for t in before}
    await flows.rotate(live)


def test_the_purge_command_reports_what_it_deleted(
    aged_rows: Aged, cli_environ: dict[str, str]
) -> None:
    result = CliRunner().invoke(
        main, ["purge", "--batch", "2", "--retention-days", "7"], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "access_tokens: 7 deleted" in lines
    assert "grants: 6 deleted" in lines
    assert "revocations: 4 deleted" in lines
    again = CliRunner().invoke(main, ["purge", "--batch", "2"], catch_exceptions=False)
    assert again.exit_code == 0, again.output
    assert "grants: 0 deleted" in again.output.splitlines()
