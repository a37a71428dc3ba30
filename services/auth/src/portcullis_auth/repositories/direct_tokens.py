"""The token endpoint's hottest statements, for Postgres, run on asyncpg directly.

Each statement commits on its own, so each is written to be safe alone: the
rotation uses a token up, inserts its successor and records the new access
token all at once or not at all; a batch records each token only while its
client's row is unchanged. `TokenRepository` runs the same steps through
SQLAlchemy where there is no Postgres.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from typing import Any, TypeVar, cast

from sqlalchemy import JSON, Boolean, String, Table, Uuid, inspect
from sqlalchemy.orm import configure_mappers
from sqlalchemy.orm.instrumentation import manager_of_class

from portcullis_auth.db.direct import DirectConnection
from portcullis_auth.db.models import Base, Grant, RefreshToken, User
from portcullis_auth.repositories.tokens import AccessTokenRecord, RefreshTokenRecord, Rotation
from portcullis_shared.sql import UTCDateTime

_Model = TypeVar("_Model", bound=Base)


def _columns(model: type[Base]) -> tuple[list[str], list[bool]]:
    """A table's column names and, for each, whether it holds JSON (asyncpg: text).

    `_load` sets attributes from these by name, as asyncpg decodes them: so every
    column must be named as its attribute and of a type asyncpg already gives as
    Python wants it (UTCDateTime: timestamptz arrives aware) or JSON."""
    table = cast("Table", model.__table__)
    mapper = inspect(model)
    for column in table.columns:
        if mapper.get_property_by_column(column).key != column.name:
            raise TypeError(f"{table.name}.{column.name}: attribute named otherwise")
        if not isinstance(column.type, (JSON, UTCDateTime, Uuid, String, Boolean)):
            raise TypeError(f"{table.name}.{column.name}: {column.type!r} not loaded here")
    return [c.name for c in table.columns], [isinstance(c.type, JSON) for c in table.columns]


_TOKEN, _GRANT, _USER = _columns(RefreshToken), _columns(Grant), _columns(User)


def _select_list(alias: str, names: list[str]) -> str:
    return ", ".join(f"{alias}.{name}" for name in names)


_FIND_REFRESH_TOKEN = f"""
    SELECT {_select_list("r", _TOKEN[0])}, {_select_list("g", _GRANT[0])},
           {_select_list("u", _USER[0])}
    FROM refresh_tokens AS r
    JOIN grants AS g ON g.id = r.grant_id
    LEFT JOIN users AS u ON u.id = g.user_id
    WHERE r.token_hash = $1
"""  # noqa: S608 - the column names are our models', not input

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


def _load(model: type[_Model], columns: tuple[list[str], list[bool]], values: Any) -> _Model:
    """A row as an instance of its model, as the ORM's own loading makes one: its
    attributes set as loaded, not as changes (the constructor costs ten times as
    much). Read-only: it belongs to no session and is never added to one."""
    names, is_json = columns
    instance: _Model = manager_of_class(model).new_instance()
    instance.__dict__.update(
        (name, json.loads(value) if decode and value is not None else value)
        for name, decode, value in zip(names, is_json, values, strict=True)
    )
    return instance


configure_mappers()  # `_load` needs the models' attributes set up


class DirectTokenStatements:
    def __init__(self, connection: DirectConnection) -> None:
        self._connection = connection

    async def find_refresh_token(
        self, token_hash: str
    ) -> tuple[RefreshToken, Grant, User | None] | None:
        """The token with this hash, its grant, and the grant's user (None: a client's)."""
        row = await self._connection.fetchrow(_FIND_REFRESH_TOKEN, token_hash)
        if row is None:
            return None
        values = list(row.values())
        token_end = len(_TOKEN[0])
        grant_end = token_end + len(_GRANT[0])
        token = _load(RefreshToken, _TOKEN, values[:token_end])
        grant = _load(Grant, _GRANT, values[token_end:grant_end])
        user_values = values[grant_end:]
        user = None if user_values[0] is None else _load(User, _USER, user_values)
        return token, grant, user

    async def rotate_and_record(
        self,
        old_id: uuid.UUID,
        successor: RefreshTokenRecord,
        record: AccessTokenRecord,
        client_version: int,
    ) -> Rotation:
        """See `TokenRepository.rotate_and_record`; here nothing is written unless
        everything is."""
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

    async def record_batch(self, batch: Sequence[tuple[AccessTokenRecord, int]]) -> set[uuid.UUID]:
        """Record many access tokens in one statement, each only while its client's row
        is unrevoked and at the version it was read at; the jtis recorded."""
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
