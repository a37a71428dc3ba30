"""Device authorizations (RFC 8628): started by a device, answered by a signed-in user,
polled for by the device (the protocol core's device store).

A user code is typed by a person on another device, so it is short, case-free
and unambiguous: eight letters from 20 consonants (no vowels, so no words;
RFC 8628 §6.1), about 34.6 bits. Guessing is limited per session and address
where codes are entered (§5.1).
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from portcullis_auth.db.models import DeviceAuthorization, utcnow
from portcullis_auth.records import Client, StartedDeviceAuthorization
from portcullis_auth.records import DeviceAuthorization as DeviceRecord
from portcullis_auth.repositories.devices import DeviceRepository
from portcullis_auth.security.secrets import generate_secret, hash_secret

USER_CODE_ALPHABET = "BCDFGHJKLMNPQRSTVWXZ"
USER_CODE_LENGTH = 8
DEVICE_CODE_TTL = 600
"""Seconds a device code lives (§3.2 `expires_in`)."""


def new_user_code() -> str:
    return "".join(secrets.choice(USER_CODE_ALPHABET) for _ in range(USER_CODE_LENGTH))


def normalise_user_code(typed: str) -> str | None:
    """The code as stored, from what a person typed (any case, dashes and spaces ignored);
    None when it cannot be a code."""
    code = "".join(ch for ch in typed.upper() if ch not in "- ")
    if len(code) != USER_CODE_LENGTH or any(ch not in USER_CODE_ALPHABET for ch in code):
        return None
    return code


def display_user_code(code: str) -> str:
    """As shown to people: two groups of four (BCDF-GHJK)."""
    half = len(code) // 2
    return f"{code[:half]}-{code[half:]}"


@dataclass(frozen=True, slots=True)
class PendingDevice:
    """A pending authorization as its user sees it on the verification page."""

    id: uuid.UUID
    client_id: str
    scopes: tuple[str, ...]


class DeviceService:
    def __init__(self, session: AsyncSession, poll_interval: int = 5) -> None:
        """`poll_interval`: seconds a device waits between polls (each `slow_down` adds 5)."""
        self._devices = DeviceRepository(session)
        self._poll_interval = poll_interval

    async def start(
        self, *, client: Client, scopes: frozenset[str], audience: str
    ) -> StartedDeviceAuthorization:
        device_code = generate_secret()
        now = utcnow()
        user_code = new_user_code()
        while await self._devices.user_code_in_use(user_code, now):
            user_code = new_user_code()
        await self._devices.add(
            DeviceAuthorization(
                id=uuid.uuid4(),
                device_code_hash=hash_secret(device_code),
                user_code=user_code,
                client_id=client.id,
                scopes=sorted(scopes),
                audience=audience,
                status="pending",
                user_id=None,
                interval=self._poll_interval,
                last_polled_at=None,
                created_at=now,
                expires_at=now + timedelta(seconds=DEVICE_CODE_TTL),
                grant_id=None,
            )
        )
        return StartedDeviceAuthorization(
            device_code=device_code,
            user_code=display_user_code(user_code),
            expires_in=DEVICE_CODE_TTL,
            interval=self._poll_interval,
        )

    async def find_device_code(self, device_code: str) -> DeviceRecord | None:
        return await self._devices.find_by_device_code(hash_secret(device_code))

    async def record_poll(self, authorization_id: uuid.UUID) -> bool:
        return await self._devices.record_poll(authorization_id, utcnow())

    async def mark_issued(self, authorization_id: uuid.UUID, family_id: uuid.UUID) -> bool:
        return await self._devices.mark_issued(authorization_id, family_id)

    async def pending(self, user_code: str) -> PendingDevice | None:
        """The pending authorization a (normalised) user code names, if any."""
        found = await self._devices.pending_by_user_code(user_code, utcnow())
        if found is None:
            return None
        return PendingDevice(found.id, found.client_id, tuple(found.scopes))

    async def pending_by_id(self, authorization_id: uuid.UUID) -> PendingDevice | None:
        """The authorization of that id, if it still waits for an answer."""
        found = await self._devices.pending_by_id(authorization_id, utcnow())
        if found is None:
            return None
        return PendingDevice(found.id, found.client_id, tuple(found.scopes))

    async def answer(self, authorization_id: uuid.UUID, user_id: uuid.UUID, approved: bool) -> bool:
        """The user's answer, once; False when the authorization is no longer pending (or
        has expired)."""
        return await self._devices.decide(authorization_id, user_id, approved, utcnow())
