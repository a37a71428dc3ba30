"""The token store on Postgres: each statement on asyncpg directly, committing alone.

Through a SQLAlchemy session each of these also paid a pool ping, BEGIN,
COMMIT and ORM row loading: most of a rotation's CPU time. Here each runs on a
connection of a small asyncpg pool (`db/direct.py`), prepared once per
connection, and is written to be safe on its own: the rotation writes all of
its rows or none, and a batch records each token only while its client's row
is unchanged.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from typing import Any

from portcullis_auth.db.direct import DirectConnection
from portcullis_auth.records import FoundRefreshToken, RefreshFamily, RefreshToken, User
from portcullis_auth.repositories.token_store import AccessTokenRow, RefreshTokenRow, Rotation

_FIND_REFRESH_TOKEN = """
    SELECT r.id, r.created_at, r.expires_at, r.used_at, r.revoked_at,
           g.id AS family_id, g.client_id, g.user_id, g.grant_type, g.scopes, g.audience,
           g.expires_at AS family_expires_at, g.revoked_at AS family_revoked_at,
           u.is_admin, u.disabled_at
    FROM refresh_tokens AS r
    JOIN grants AS g ON g.id = r.grant_id
    LEFT JOIN users AS u ON u.id = g.user_id
    WHERE r.token_hash = $1
"""  # noqa: S105 - SQL, not a password

# `client` is the client's row if it is unrevoked and at the version read; `family`
# the token's grant if unrevoked, share-locked so that a family revoked at the same
# moment waits for this statement (and then sees its access token) or is seen by
# it; `used` matches only an unused, unrevoked token and only with both; `successor`
# and `record` follow only a `used` row. So it writes all three rows or none.
_ROTATE_AND_RECORD = """
    WITH client AS (
        SELECT FROM oauth_clients
        WHERE id = $8::varchar AND version = $15::integer AND revoked_at IS NULL
    ), family AS (
        SELECT FROM grants AS g JOIN refresh_tokens AS r ON r.grant_id = g.id
        WHERE r.id = $1::uuid AND g.revoked_at IS NULL
        FOR SHARE OF g
    ), used AS (
        UPDATE refresh_tokens SET used_at = $2::timestamptz
        WHERE id = $1::uuid AND used_at IS NULL AND revoked_at IS NULL
          AND EXISTS (SELECT FROM client) AND EXISTS (SELECT FROM family)
        RETURNING id, grant_id
    ), successor AS (
        INSERT INTO refresh_tokens (id, token_hash, grant_id, parent_id, created_at, expires_at)
        SELECT $3::uuid, $4::varchar, used.grant_id, used.id, $2::timestamptz, $5::timestamptz
        FROM used
        RETURNING id
    ), record AS (
        INSERT INTO access_tokens (jti, sid, client_id, user_id, scopes, audience, kid,
                                   created_at, expires_at)
        SELECT $6::uuid, $7::uuid, $8::varchar, $9::uuid, $10::json, $11::varchar,
               $12::varchar, $13::timestamptz, $14::timestamptz
        FROM successor
        RETURNING jti
    )
    SELECT EXISTS (SELECT FROM record) AS done, EXISTS (SELECT FROM client) AS client_unchanged
"""

# Many requests' records in one statement, each kept only while its client's row is
# unrevoked and at the version it was authenticated with.
_RECORD_BATCH = """
    INSERT INTO access_tokens (jti, sid, client_id, user_id, scopes, audience, kid,
                               created_at, expires_at)
    SELECT t.jti, t.sid, t.client_id, t.user_id, t.scopes::json, t.audience, t.kid,
           t.created_at, t.expires_at
    FROM unnest($1::uuid[], $2::uuid[], $3::varchar[], $4::uuid[], $5::text[],
                $6::varchar[], $7::varchar[], $8::timestamptz[], $9::timestamptz[],
                $10::integer[])
         AS t(jti, sid, client_id, user_id, scopes, audience, kid, created_at, expires_at,
              client_version)
    JOIN oauth_clients AS c
      ON c.id = t.client_id AND c.version = t.client_version AND c.revoked_at IS NULL
    RETURNING access_tokens.jti
"""


def found_refresh_token(row: Any) -> FoundRefreshToken:
    """A joined row of `_FIND_REFRESH_TOKEN` as records (JSON arrives as text)."""
    user_id = row["user_id"]
    return FoundRefreshToken(
        token=RefreshToken(
            id=row["id"],
            family_id=row["family_id"],
            created_at=row["created_at"],
            expires_at=row["expires_at"],
            used_at=row["used_at"],
            revoked_at=row["revoked_at"],
        ),
        family=RefreshFamily(
            id=row["family_id"],
            client_id=row["client_id"],
            user_id=user_id,
            grant_type=row["grant_type"],
            scopes=tuple(json.loads(row["scopes"])),
            audience=row["audience"],
            expires_at=row["family_expires_at"],
            revoked_at=row["family_revoked_at"],
        ),
        user=None
        if user_id is None or row["is_admin"] is None
        else User(id=user_id, is_admin=row["is_admin"], active=row["disabled_at"] is None),
    )


class PostgresTokenStore:
    """`TokenStore` on one request's direct connection (`DirectConnection`)."""

    def __init__(self, connection: DirectConnection) -> None:
        self._connection = connection

    async def find_refresh_token(self, token_hash: str) -> FoundRefreshToken | None:
        row = await self._connection.fetchrow(_FIND_REFRESH_TOKEN, token_hash)
        return None if row is None else found_refresh_token(row)

    async def rotate_and_record(
        self,
        old_id: uuid.UUID,
        successor: RefreshTokenRow,
        record: AccessTokenRow,
        client_version: int,
    ) -> Rotation:
        row = await self._connection.fetchrow(
            _ROTATE_AND_RECORD,
            old_id,
            successor.created_at,
            successor.id,
            successor.token_hash,
            successor.expires_at,
            record.jti,
            record.sid,
            record.client_id,
            record.user_id,
            json.dumps(record.scopes),
            record.audience,
            record.kid,
            record.created_at,
            record.expires_at,
            client_version,
        )
        assert row is not None  # the final SELECT always gives one row
        if not row["client_unchanged"]:
            return Rotation.CLIENT_CHANGED
        return Rotation.DONE if row["done"] else Rotation.ALREADY_USED

    async def record_access_tokens(
        self, batch: Sequence[tuple[AccessTokenRow, int]]
    ) -> set[uuid.UUID]:
        records = [record for record, _ in batch]
        jtis = await self._connection.fetchcolumn(
            _RECORD_BATCH,
            [r.jti for r in records],
            [r.sid for r in records],
            [r.client_id for r in records],
            [r.user_id for r in records],
            [json.dumps(r.scopes) for r in records],
            [r.audience for r in records],
            [r.kid for r in records],
            [r.created_at for r in records],
            [r.expires_at for r in records],
            [version for _, version in batch],
        )
        return set(jtis)
