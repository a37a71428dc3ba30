"""`portcullis purge`: expired and revoked rows go, in batches, each its own transaction."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from portcullis_auth.db.models import utcnow
from portcullis_auth.repositories.purge import PurgeRepository

BATCH = 1_000


async def purge(
    sessionmaker: async_sessionmaker[AsyncSession], retention: timedelta, batch: int = BATCH
) -> dict[str, int]:
    """Delete rows that ended longer than `retention` ago; counts per table."""
    before = utcnow() - retention
    steps: dict[str, Callable[[PurgeRepository, datetime, int], Awaitable[int]]] = {
        "access_tokens": PurgeRepository.access_tokens,
        "grants": PurgeRepository.grants,
        "revocations": PurgeRepository.revocations,
        "authorization_codes": PurgeRepository.authorization_codes,
        "device_authorizations": PurgeRepository.device_authorizations,
        "sign_in_sessions": PurgeRepository.sign_in_sessions,
    }
    counts = dict.fromkeys(steps, 0)
    for name, step in steps.items():
        while True:
            # Short transactions: the token endpoint never waits long on a purge.
            async with sessionmaker() as session:
                deleted = await step(PurgeRepository(session), before, batch)
                await session.commit()
            counts[name] += deleted
            if deleted < batch:
                break
    return counts
