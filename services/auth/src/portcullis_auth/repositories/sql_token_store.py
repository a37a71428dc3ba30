"""The token store through SQLAlchemy: the embedded default's (SQLite) statements.

Each method writes all of its rows or none within the caller's transaction:
the rotation uses its token up in one UPDATE that also requires the client's
row to be unchanged and the family unrevoked, and writes the rest only after
it matched; SQLite lets one writer at a time, so nothing changes in between.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import fields
from typing import Any, cast

from sqlalchemy import Table, bindparam, exists, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from portcullis_auth.db.models import AccessToken, Grant, OAuthClient, RefreshToken, User
from portcullis_auth.records import FoundRefreshToken, RefreshFamily
from portcullis_auth.records import RefreshToken as RefreshTokenRecord
from portcullis_auth.records import User as UserRecord
from portcullis_auth.repositories.token_store import AccessTokenRow, RefreshTokenRow, Rotation

ROW_COLUMNS = tuple(field.name for field in fields(AccessTokenRow))
_access_tokens = cast("Table", AccessToken.__table__)
_clients = cast("Table", OAuthClient.__table__)

# INSERT ... SELECT from the client's row: no row, no record. Built once: building
# and keying a statement like this costs more than running it.
RECORD_IF_CLIENT_UNCHANGED = insert(_access_tokens).from_select(
    list(ROW_COLUMNS),
    select(*(bindparam(name, type_=_access_tokens.c[name].type) for name in ROW_COLUMNS)).where(
        _clients.c.id == bindparam("client_id"),
        _clients.c.version == bindparam("client_version"),
        _clients.c.revoked_at.is_(None),
    ),
)
"""Records one access token while its client's row is unrevoked and at the version read."""

_FIND_REFRESH_TOKEN = (
    select(
        RefreshToken.id,
        RefreshToken.created_at,
        RefreshToken.expires_at,
        RefreshToken.used_at,
        RefreshToken.revoked_at,
        Grant.id.label("family_id"),
        Grant.client_id,
        Grant.user_id,
        Grant.grant_type,
        Grant.scopes,
        Grant.audience,
        Grant.expires_at.label("family_expires_at"),
        Grant.revoked_at.label("family_revoked_at"),
        User.is_admin,
        User.disabled_at,
    )
    .join(Grant, Grant.id == RefreshToken.grant_id)
    .outerjoin(User, User.id == Grant.user_id)
    .where(RefreshToken.token_hash == bindparam("token_hash"))
)


def _client_unchanged(client_id: str, version: int) -> Any:
    return exists().where(
        OAuthClient.id == client_id,
        OAuthClient.version == version,
        OAuthClient.revoked_at.is_(None),
    )


class SqlTokenStore:
    """`TokenStore` on a SQLAlchemy session or connection; the caller commits."""

    def __init__(self, executor: AsyncSession | AsyncConnection) -> None:
        self._executor = executor

    async def find_refresh_token(self, token_hash: str) -> FoundRefreshToken | None:
        result = await self._executor.execute(_FIND_REFRESH_TOKEN, {"token_hash": token_hash})
        row = result.mappings().one_or_none()
        if row is None:
            return None
        user_id = row["user_id"]
        return FoundRefreshToken(
            token=RefreshTokenRecord(
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
                scopes=tuple(row["scopes"]),
                audience=row["audience"],
                expires_at=row["family_expires_at"],
                revoked_at=row["family_revoked_at"],
            ),
            user=None
            if user_id is None or row["is_admin"] is None
            else UserRecord(
                id=user_id, is_admin=row["is_admin"], active=row["disabled_at"] is None
            ),
        )

    async def rotate_and_record(
        self,
        old_id: uuid.UUID,
        successor: RefreshTokenRow,
        record: AccessTokenRow,
        client_version: int,
    ) -> Rotation:
        family_live = exists().where(Grant.id == RefreshToken.grant_id, Grant.revoked_at.is_(None))
        used = (
            await self._executor.execute(
                update(RefreshToken)
                .where(
                    RefreshToken.id == old_id,
                    RefreshToken.used_at.is_(None),
                    RefreshToken.revoked_at.is_(None),
                    family_live,
                    _client_unchanged(record.client_id, client_version),
                )
                .values(used_at=successor.created_at)
                .returning(RefreshToken.grant_id)
            )
        ).one_or_none()
        if used is None:
            unchanged = await self._executor.scalar(
                select(_client_unchanged(record.client_id, client_version))
            )
            return Rotation.ALREADY_USED if unchanged else Rotation.CLIENT_CHANGED
        # This transaction now writes, so no other writer changes the client before it
        # ends: the rest needs no condition.
        await self._executor.execute(
            insert(RefreshToken).values(
                id=successor.id,
                token_hash=successor.token_hash,
                created_at=successor.created_at,
                expires_at=successor.expires_at,
                grant_id=used.grant_id,
                parent_id=old_id,
            )
        )
        await self._executor.execute(
            insert(AccessToken).values({name: getattr(record, name) for name in ROW_COLUMNS})
        )
        return Rotation.DONE

    async def record_access_tokens(
        self, batch: Sequence[tuple[AccessTokenRow, int]]
    ) -> set[uuid.UUID]:
        written = set()
        for record, version in batch:
            params = {name: getattr(record, name) for name in ROW_COLUMNS}
            result = await self._executor.execute(
                RECORD_IF_CLIENT_UNCHANGED, {**params, "client_version": version}
            )
            if cast("Any", result).rowcount == 1:
                written.add(record.jti)
        return written
