"""Grants (refresh families), refresh tokens and access-token records."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Insert, func, insert, literal, select, text, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from portcullis_auth.db.models import AccessToken, Grant, OAuthClient, RefreshToken

_RECORD_COLUMNS = (
    "jti",
    "sid",
    "client_id",
    "user_id",
    "scopes",
    "audience",
    "kid",
    "created_at",
    "expires_at",
)


def record_if_client_unchanged(record: AccessToken, client_version: int) -> Insert:
    """INSERT ... SELECT from the client's row: no row, no record."""
    table = AccessToken.__table__
    values = [literal(getattr(record, name), table.c[name].type) for name in _RECORD_COLUMNS]
    return insert(AccessToken).from_select(
        list(_RECORD_COLUMNS),
        select(*values).where(
            OAuthClient.id == record.client_id,
            OAuthClient.version == client_version,
            OAuthClient.revoked_at.is_(None),
        ),
    )


# Postgres: a batch of records in one statement, each kept only while its client's
# row is unrevoked and at the version it was authenticated with.
_RECORD_BATCH = text(
    """
    INSERT INTO access_tokens (jti, sid, client_id, user_id, scopes, audience, kid,
                               created_at, expires_at)
    SELECT t.jti, t.sid, t.client_id, t.user_id, t.scopes::json, t.audience, t.kid,
           t.created_at, t.expires_at
    FROM unnest(CAST(:jti AS uuid[]), CAST(:sid AS uuid[]), CAST(:client_id AS varchar[]),
                CAST(:user_id AS uuid[]), CAST(:scopes AS text[]), CAST(:audience AS varchar[]),
                CAST(:kid AS varchar[]), CAST(:created_at AS timestamptz[]),
                CAST(:expires_at AS timestamptz[]), CAST(:client_version AS integer[]))
         AS t(jti, sid, client_id, user_id, scopes, audience, kid, created_at, expires_at,
              client_version)
    JOIN oauth_clients AS c
      ON c.id = t.client_id AND c.version = t.client_version AND c.revoked_at IS NULL
    RETURNING access_tokens.jti
    """
)


async def record_batch(
    connection: AsyncConnection, batch: Sequence[tuple[AccessToken, int]]
) -> set[uuid.UUID]:
    """Record many access tokens, each only while its client's row is unchanged (see
    `record_if_client_unchanged`); the jtis recorded. Postgres: one statement;
    elsewhere one per record."""
    if connection.dialect.name != "postgresql":
        written = set()
        for record, version in batch:
            written_one = await connection.execute(record_if_client_unchanged(record, version))
            if written_one.rowcount == 1:
                written.add(record.jti)
        return written
    columns: dict[str, list[Any]] = {name: [] for name in (*_RECORD_COLUMNS, "client_version")}
    for record, version in batch:
        for name in _RECORD_COLUMNS:
            columns[name].append(getattr(record, name))
        columns["client_version"].append(version)
    columns["scopes"] = [json.dumps(scopes) for scopes in columns["scopes"]]
    result = await connection.execute(_RECORD_BATCH, columns)
    return set(result.scalars())


class TokenRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add_grant(self, grant: Grant) -> Grant:
        self._session.add(grant)
        await self._session.flush()
        return grant

    async def get_grant(self, grant_id: uuid.UUID) -> Grant | None:
        return await self._session.get(Grant, grant_id)

    async def get_access_token(self, jti: uuid.UUID) -> AccessToken | None:
        return await self._session.get(AccessToken, jti)

    async def latest_token_expiry(self, sid: uuid.UUID) -> datetime | None:
        result = await self._session.execute(
            select(func.max(AccessToken.expires_at)).where(AccessToken.sid == sid)
        )
        return result.scalar_one_or_none()

    async def revoke_access_token(self, jti: uuid.UUID, now: datetime) -> None:
        await self._session.execute(
            update(AccessToken)
            .where(AccessToken.jti == jti, AccessToken.revoked_at.is_(None))
            .values(revoked_at=now)
        )

    async def revoke_all_of(
        self, *, now: datetime, user_id: uuid.UUID | None = None, client_id: str | None = None
    ) -> None:
        """Mark every grant, refresh token and access token of a user or a client revoked."""
        grant_filter = (
            Grant.user_id == user_id if user_id is not None else Grant.client_id == client_id
        )
        token_filter = (
            AccessToken.user_id == user_id
            if user_id is not None
            else AccessToken.client_id == client_id
        )
        grants = select(Grant.id).where(grant_filter).scalar_subquery()
        await self._session.execute(
            update(RefreshToken)
            .where(RefreshToken.grant_id.in_(grants), RefreshToken.revoked_at.is_(None))
            .values(revoked_at=now)
        )
        await self._session.execute(
            update(Grant).where(grant_filter, Grant.revoked_at.is_(None)).values(revoked_at=now)
        )
        await self._session.execute(
            update(AccessToken)
            .where(token_filter, AccessToken.revoked_at.is_(None))
            .values(revoked_at=now)
        )

    async def personal_access_grants(
        self, user_id: uuid.UUID, client_id: str, now: datetime
    ) -> list[Grant]:
        """A user's live personal access tokens, newest first."""
        result = await self._session.execute(
            select(Grant)
            .where(
                Grant.user_id == user_id,
                Grant.client_id == client_id,
                Grant.revoked_at.is_(None),
                Grant.expires_at > now,
            )
            .order_by(Grant.created_at.desc())
        )
        return list(result.scalars())

    async def add_access_token(self, record: AccessToken, client_version: int) -> bool:
        """Record an access token, but only while its client's row is unrevoked and still
        at `client_version`; False when it is not (nothing written)."""
        statement = record_if_client_unchanged(record, client_version)
        written = cast("CursorResult[Any]", await self._session.execute(statement))
        return written.rowcount == 1

    async def add_refresh_token(self, token: RefreshToken) -> None:
        self._session.add(token)
        await self._session.flush()

    async def find_refresh_token(self, token_hash: str) -> tuple[RefreshToken, Grant] | None:
        result = await self._session.execute(
            select(RefreshToken, Grant)
            .join(Grant, Grant.id == RefreshToken.grant_id)
            .where(RefreshToken.token_hash == token_hash)
        )
        row = result.one_or_none()
        return None if row is None else (row[0], row[1])

    async def find_child(self, parent_id: uuid.UUID) -> RefreshToken | None:
        result = await self._session.execute(
            select(RefreshToken).where(RefreshToken.parent_id == parent_id)
        )
        return result.scalars().first()

    async def rotate_refresh_token(
        self, old_id: uuid.UUID, successor: RefreshToken, now: datetime
    ) -> bool:
        """Mark `old_id` used and insert its successor, in one statement.

        The UPDATE matches only an unused, unrevoked token, so of N concurrent
        rotations exactly one wins; the others match nothing and insert
        nothing. On Postgres both happen in one statement (a data-modifying
        CTE); SQLite has no such CTE but serialises writers, so there the
        same two steps run back to back in the transaction.
        """
        mark_used = (
            update(RefreshToken)
            .where(
                RefreshToken.id == old_id,
                RefreshToken.used_at.is_(None),
                RefreshToken.revoked_at.is_(None),
            )
            .values(used_at=now)
            .returning(RefreshToken.id, RefreshToken.grant_id)
        )
        if self._session.get_bind().dialect.name == "postgresql":
            used = mark_used.cte("used")
            statement = (
                insert(RefreshToken)
                .from_select(
                    ["id", "token_hash", "created_at", "expires_at", "grant_id", "parent_id"],
                    select(
                        literal(successor.id, RefreshToken.id.type),
                        literal(successor.token_hash, RefreshToken.token_hash.type),
                        literal(successor.created_at, RefreshToken.created_at.type),
                        literal(successor.expires_at, RefreshToken.expires_at.type),
                        used.c.grant_id,
                        used.c.id,
                    ),
                )
                .returning(RefreshToken.id)
            )
            inserted = (await self._session.execute(statement)).scalar_one_or_none()
            return inserted is not None
        row = (await self._session.execute(mark_used)).one_or_none()
        if row is None:
            return False
        await self._session.execute(
            insert(RefreshToken).values(
                id=successor.id,
                token_hash=successor.token_hash,
                created_at=successor.created_at,
                expires_at=successor.expires_at,
                grant_id=row.grant_id,
                parent_id=row.id,
            )
        )
        return True

    async def revoke_grant(self, grant_id: uuid.UUID, now: datetime) -> None:
        """Revoke a family: the grant, its refresh tokens and its access tokens."""
        await self._session.execute(
            update(Grant)
            .where(Grant.id == grant_id, Grant.revoked_at.is_(None))
            .values(revoked_at=now)
        )
        await self._session.execute(
            update(RefreshToken)
            .where(RefreshToken.grant_id == grant_id, RefreshToken.revoked_at.is_(None))
            .values(revoked_at=now)
        )
        await self._session.execute(
            update(AccessToken)
            .where(AccessToken.sid == grant_id, AccessToken.revoked_at.is_(None))
            .values(revoked_at=now)
        )
