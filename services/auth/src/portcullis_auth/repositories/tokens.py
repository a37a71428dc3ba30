"""Grants (refresh families), refresh tokens and access-token records."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from enum import Enum
from typing import TYPE_CHECKING, cast

from sqlalchemy import Table, bindparam, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from portcullis_auth.db.models import AccessToken, Grant, OAuthClient, RefreshToken, User

if TYPE_CHECKING:
    from portcullis_auth.repositories.direct_tokens import DirectTokenStatements


@dataclass(frozen=True, slots=True)
class AccessTokenRecord:
    """An access token's row, about to be written (cheaper to build than the ORM's)."""

    jti: uuid.UUID
    sid: uuid.UUID
    client_id: str
    user_id: uuid.UUID | None
    scopes: list[str]
    audience: str
    kid: str
    created_at: datetime
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class RefreshTokenRecord:
    """A new refresh token's row, about to be written (its grant's comes with it)."""

    id: uuid.UUID
    token_hash: str
    created_at: datetime
    expires_at: datetime


class Rotation(Enum):
    """What became of an attempt to use a refresh token up."""

    DONE = "done"
    """Used up, its successor inserted and the new access token recorded."""
    ALREADY_USED = "already used"
    """Another request used it first."""
    CLIENT_CHANGED = "client changed"
    """The client's row changed since it was read: read it afresh."""


_RECORD_COLUMNS = tuple(field.name for field in fields(AccessTokenRecord))
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


async def record_batch(
    connection: AsyncConnection, batch: Sequence[tuple[AccessTokenRecord, int]]
) -> set[uuid.UUID]:
    """Record access tokens one statement each, each only while its client's row is
    unrevoked and at the version it was read at; the jtis recorded. On Postgres the
    batch goes to `DirectTokenStatements.record_batch` instead (one statement)."""
    written = set()
    for record, version in batch:
        params = {name: getattr(record, name) for name in _RECORD_COLUMNS}
        result = await connection.execute(
            _RECORD_IF_CLIENT_UNCHANGED, {**params, "client_version": version}
        )
        if result.rowcount == 1:
            written.add(record.jti)
    return written


_FIND_REFRESH_TOKEN = (
    select(RefreshToken, Grant, User)
    .join(Grant, Grant.id == RefreshToken.grant_id)
    .outerjoin(User, User.id == Grant.user_id)
    .where(RefreshToken.token_hash == bindparam("token_hash"))
)


class TokenRepository:
    def __init__(self, session: AsyncSession, direct: DirectTokenStatements | None = None) -> None:
        """`direct`: on Postgres, where refresh tokens are found and rotated (each
        statement on its own, outside `session`)."""
        self._session = session
        self._direct = direct

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

    async def add_access_token(self, record: AccessTokenRecord, client_version: int) -> bool:
        """Record an access token, but only while its client's row is unrevoked and still
        at `client_version`; False when it is not (nothing written)."""
        connection = await self._session.connection()
        return record.jti in await record_batch(connection, [(record, client_version)])

    async def add_refresh_token(self, token: RefreshTokenRecord, grant_id: uuid.UUID) -> None:
        await self._session.execute(
            insert(RefreshToken).values(
                id=token.id,
                token_hash=token.token_hash,
                grant_id=grant_id,
                created_at=token.created_at,
                expires_at=token.expires_at,
            )
        )

    async def find_refresh_token(
        self, token_hash: str
    ) -> tuple[RefreshToken, Grant, User | None] | None:
        """The token with this hash, its grant, and the grant's user (None: a client's)."""
        if self._direct is not None:
            return await self._direct.find_refresh_token(token_hash)
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
        self,
        old_id: uuid.UUID,
        successor: RefreshTokenRecord,
        record: AccessTokenRecord,
        client_version: int,
    ) -> Rotation:
        """Mark `old_id` used, insert its successor and record the family's new access
        token, only while the client's row is unrevoked and at `client_version`.

        The UPDATE matches only an unused, unrevoked token, so of N concurrent
        rotations exactly one wins; the others write nothing (ALREADY_USED). On
        Postgres it is one statement that writes all or nothing. Elsewhere the
        steps run in the session's transaction, which the caller must roll back on
        CLIENT_CHANGED (SQLite serialises writers, so no other rotation interleaves).
        """
        if self._direct is not None:
            return await self._direct.rotate_and_record(old_id, successor, record, client_version)
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
            return Rotation.ALREADY_USED
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
        if await self.add_access_token(record, client_version):
            return Rotation.DONE
        return Rotation.CLIENT_CHANGED

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
