"""Grants (refresh families), refresh tokens and access-token records."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, func, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from portcullis_auth.db.models import AccessToken, Grant, OAuthClient, RefreshToken, User

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


_access_tokens = cast("Table", AccessToken.__table__)
_clients = cast("Table", OAuthClient.__table__)

# INSERT ... SELECT from the client's row: no row, no record. Built once: building
# and keying a statement like this costs more than running it.
_RECORD_IF_CLIENT_UNCHANGED = insert(_access_tokens).from_select(
    list(_RECORD_COLUMNS),
    select(*(bindparam(name, type_=_access_tokens.c[name].type) for name in _RECORD_COLUMNS)).where(
        _clients.c.id == bindparam("client_id"),
        _clients.c.version == bindparam("client_version"),
        _clients.c.revoked_at.is_(None),
    ),
)


def record_params(
    record: AccessToken, client_version: int, *, json_scopes: bool = False
) -> dict[str, Any]:
    """The bind parameters of an access-token record checked against its client's row;
    `json_scopes` for the SQL-text statements, which take the scopes as JSON text."""
    params = {name: getattr(record, name) for name in _RECORD_COLUMNS}
    params["client_version"] = client_version
    if json_scopes:
        params["scopes"] = json.dumps(params["scopes"])
    return params


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
    """Record many access tokens, each only while its client's row is unrevoked and at
    the version it was read at; the jtis recorded. Postgres: one statement;
    elsewhere one per record."""
    if connection.dialect.name != "postgresql":
        written = set()
        for record, version in batch:
            written_one = await connection.execute(
                _RECORD_IF_CLIENT_UNCHANGED, record_params(record, version)
            )
            if written_one.rowcount == 1:
                written.add(record.jti)
        return written
    rows = [record_params(record, version, json_scopes=True) for record, version in batch]
    columns = {name: [row[name] for row in rows] for name in rows[0]}
    result = await connection.execute(_RECORD_BATCH, columns)
    return set(result.scalars())


_FIND_REFRESH_TOKEN = (
    select(RefreshToken, Grant, User)
    .join(Grant, Grant.id == RefreshToken.grant_id)
    .outerjoin(User, User.id == Grant.user_id)
    .where(RefreshToken.token_hash == bindparam("token_hash"))
)

# Postgres: use a refresh token up, insert its successor and record the access token
# issued with it, in one statement. `used` matches only an unused, unrevoked token;
# `successor` only follows a `used` row; `record` only a successor, and only while
# the client's row is unrevoked and at the version it was read at.
_ROTATE_AND_RECORD = text(
    """
    WITH used AS (
        UPDATE refresh_tokens SET used_at = CAST(:now AS timestamptz)
        WHERE id = CAST(:old_id AS uuid) AND used_at IS NULL AND revoked_at IS NULL
        RETURNING id, grant_id
    ), successor AS (
        INSERT INTO refresh_tokens (id, token_hash, grant_id, parent_id, created_at, expires_at)
        SELECT CAST(:new_id AS uuid), CAST(:new_hash AS varchar), used.grant_id, used.id,
               CAST(:now AS timestamptz), CAST(:new_expires_at AS timestamptz)
        FROM used
        RETURNING id
    ), record AS (
        INSERT INTO access_tokens (jti, sid, client_id, user_id, scopes, audience, kid,
                                   created_at, expires_at)
        SELECT CAST(:jti AS uuid), CAST(:sid AS uuid), c.id, CAST(:user_id AS uuid),
               CAST(:scopes AS json), CAST(:audience AS varchar), CAST(:kid AS varchar),
               CAST(:created_at AS timestamptz), CAST(:expires_at AS timestamptz)
        FROM successor
        JOIN oauth_clients AS c
          ON c.id = CAST(:client_id AS varchar) AND c.version = CAST(:client_version AS integer)
         AND c.revoked_at IS NULL
        RETURNING jti
    )
    SELECT (SELECT count(*) FROM successor) AS rotated, (SELECT count(*) FROM record) AS recorded
    """
)


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
        connection = await self._session.connection()
        return record.jti in await record_batch(connection, [(record, client_version)])

    async def add_refresh_token(self, token: RefreshToken) -> None:
        self._session.add(token)
        await self._session.flush()

    async def find_refresh_token(
        self, token_hash: str
    ) -> tuple[RefreshToken, Grant, User | None] | None:
        """The token with this hash, its grant, and the grant's user (None: a client's)."""
        row = (
            await self._session.execute(_FIND_REFRESH_TOKEN, {"token_hash": token_hash})
        ).one_or_none()
        return None if row is None else (row[0], row[1], row[2])

    async def find_child(self, parent_id: uuid.UUID) -> RefreshToken | None:
        result = await self._session.execute(
            select(RefreshToken).where(RefreshToken.parent_id == parent_id)
        )
        return result.scalars().first()

    async def rotate_and_record(
        self, old_id: uuid.UUID, successor: RefreshToken, record: AccessToken, client_version: int
    ) -> tuple[bool, bool]:
        """Mark `old_id` used, insert its successor and record the family's new access
        token: (rotated, recorded).

        The UPDATE matches only an unused, unrevoked token, so of N concurrent
        rotations exactly one wins; the others match nothing and write nothing
        (False, False). The record is written only while the client's row is
        unrevoked and at `client_version`: (True, False) means the client changed,
        and the caller must roll back. On Postgres it is all one statement (data-
        modifying CTEs); SQLite has no such CTE but serialises writers, so there
        the same steps run back to back in the transaction.
        """
        if self._session.get_bind().dialect.name == "postgresql":
            params = record_params(record, client_version, json_scopes=True)
            row = (
                await self._session.execute(
                    _ROTATE_AND_RECORD,
                    {
                        **params,
                        "old_id": old_id,
                        "now": successor.created_at,
                        "new_id": successor.id,
                        "new_hash": successor.token_hash,
                        "new_expires_at": successor.expires_at,
                    },
                )
            ).one()
            return bool(row.rotated), bool(row.recorded)
        mark_used = (
            update(RefreshToken)
            .where(
                RefreshToken.id == old_id,
                RefreshToken.used_at.is_(None),
                RefreshToken.revoked_at.is_(None),
            )
            .values(used_at=successor.created_at)
            .returning(RefreshToken.id, RefreshToken.grant_id)
        )
        used = (await self._session.execute(mark_used)).one_or_none()
        if used is None:
            return False, False
        await self._session.execute(
            insert(RefreshToken).values(
                id=successor.id,
                token_hash=successor.token_hash,
                created_at=successor.created_at,
                expires_at=successor.expires_at,
                grant_id=used.grant_id,
                parent_id=used.id,
            )
        )
        return True, await self.add_access_token(record, client_version)

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
