"""The token endpoint's hottest statements, as one interface with two implementations.

A refresh finds its token and rotates it; a client-credentials token records
itself, batched with other requests' records. These run on every token
request, so on Postgres they are written for Postgres alone
(`postgres_token_store.py`, on asyncpg directly: one statement each, each
committing on its own and safe alone); elsewhere (the embedded SQLite) they
run through SQLAlchemy (`sql_token_store.py`). Both keep one contract, and
one test suite runs every case of it against both.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Protocol

from portcullis_auth.records import FoundRefreshToken


@dataclass(frozen=True, slots=True)
class AccessTokenRow:
    """An access token's record, about to be written."""

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
class RefreshTokenRow:
    """A new refresh token's row, about to be written (its family's comes with it)."""

    id: uuid.UUID
    token_hash: str
    created_at: datetime
    expires_at: datetime


class Rotation(Enum):
    """What became of an attempt to use a refresh token up."""

    DONE = "done"
    """Used up, its successor inserted and the new access token recorded."""
    ALREADY_USED = "already used"
    """Another request used it first (or its family was revoked): nothing written."""
    CLIENT_CHANGED = "client changed"
    """The client's row changed since it was read: nothing written; read it afresh."""


class TokenStore(Protocol):
    async def find_refresh_token(self, token_hash: str) -> FoundRefreshToken | None:
        """The token with this hash, its family and the family's user."""
        ...

    async def rotate_and_record(
        self,
        old_id: uuid.UUID,
        successor: RefreshTokenRow,
        record: AccessTokenRow,
        client_version: int,
    ) -> Rotation:
        """Mark `old_id` used, insert its successor and record the family's new access
        token: all three or nothing. Only an unused, unrevoked token of an unrevoked
        family is used up, so of N concurrent rotations exactly one wins; and only
        while the client's row is unrevoked and at `client_version`."""
        ...

    async def record_access_tokens(
        self, batch: Sequence[tuple[AccessTokenRow, int]]
    ) -> set[uuid.UUID]:
        """Record each (token, client version) only while its client's row is unrevoked
        and at that version; the jtis recorded."""
        ...
