"""One request's writes: committed together, then their revocations published.

Every write of a request goes through one session; revocations made on the
way are recorded beside it. `commit()` commits first (Postgres is the truth)
and only then publishes what was revoked to the revocation list, so no
handler commits or publishes by hand.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from portcullis_auth.db.models import Revocation
from portcullis_auth.metrics import REVOCATIONS_RECORDED, count_by_kind
from portcullis_auth.revocation.publisher import RevocationNotLandedError
from portcullis_auth.services.revocations import RevocationService
from portcullis_auth.settings import TokenSettings

logger = logging.getLogger("portcullis.auth")

Publish = Callable[[Sequence[Revocation]], Awaitable[None]]
"""Lands committed revocations in the list, or raises `RevocationNotLandedError`."""


class UnitOfWork:
    def __init__(self, session: AsyncSession, settings: TokenSettings, publish: Publish) -> None:
        self.session = session
        self.revocations = RevocationService(session, settings)
        """Revocations made in this unit; published once it has committed."""
        self._publish = publish

    async def commit(self) -> None:
        """Commit, then publish the revocations made: `RevocationNotLandedError` when
        they do not land within the deadline (they stand, and land later)."""
        if self.session.in_transaction():
            await self.session.commit()
        await self._publish_recorded()

    async def commit_quietly(self) -> None:
        """Commit on the way to an error answer: a revocation that misses the list now is
        landed by the sync loop, and the error stays the answer."""
        if self.session.in_transaction():
            await self.session.commit()
        try:
            await self._publish_recorded()
        except RevocationNotLandedError:
            logger.warning("revocation committed but not yet published; the sync loop will land it")

    async def _publish_recorded(self) -> None:
        recorded = list(self.revocations.recorded)
        self.revocations.recorded.clear()
        if recorded:
            count_by_kind(REVOCATIONS_RECORDED, (row.kind for row in recorded))
            await self._publish(recorded)
