"""Publishing committed revocations before answering (DESIGN: 503 after 1 s)."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from portcullis_auth.db.models import Revocation
from portcullis_auth.oauth2.errors import TemporarilyUnavailableError
from portcullis_auth.revocation.publisher import RevocationNotLandedError
from portcullis_auth.runtime import AuthRuntime

logger = logging.getLogger("portcullis.auth")


async def publish_or_503(runtime: AuthRuntime, rows: Sequence[Revocation]) -> None:
    """Answer only once the revocation has landed; else 503 (it stands and lands later)."""
    try:
        await runtime.revocation_sink.publish(rows)
    except RevocationNotLandedError:
        raise TemporarilyUnavailableError(
            "the revocation is recorded and will take effect once the revocation list is reachable"
        ) from None


async def publish_quietly(runtime: AuthRuntime, rows: Sequence[Revocation]) -> None:
    """Publish revocations made on the way to an error answer; the sync loop lands any miss."""
    try:
        await runtime.revocation_sink.publish(rows)
    except RevocationNotLandedError:
        logger.warning("revocation committed but not yet in Redis; the sync loop will land it")
