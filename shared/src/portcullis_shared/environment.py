"""Reading typed settings from `PORTCULLIS_*` environment variables.

Every reader names the variable and what it expects when a value is missing
or wrong, so a bad deployment stops at startup with a message that says what
to set.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import os
import re
from collections.abc import Mapping
from pathlib import Path

from dotenv import load_dotenv

PREFIX = "PORTCULLIS_"


class SettingsError(ValueError):
    """A setting is missing or invalid; the message says what to set."""


def load_dotenv_file(path: str | os.PathLike[str] = ".env") -> None:
    """Load a `.env` file when present; real environment variables win."""
    if Path(path).is_file():
        load_dotenv(path, override=False)


class EnvReader:
    """Typed access to `PORTCULLIS_*` variables of one environment mapping."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._environ = os.environ if environ is None else environ

    def raw(self, name: str) -> str | None:
        value = self._environ.get(PREFIX + name)
        return None if value is None or value.strip() == "" else value.strip()

    def unprefixed(self, name: str) -> str | None:
        """A variable another standard names (OTEL_*), read as it is named."""
        value = self._environ.get(name)
        return None if value is None or value.strip() == "" else value.strip()

    def text(self, name: str, default: str | None = None) -> str:
        value = self.raw(name)
        if value is not None:
            return value
        if default is None:
            raise SettingsError(f"{PREFIX}{name} is not set")
        return default

    def integer(
        self, name: str, default: int, *, minimum: int = 0, maximum: int | None = None
    ) -> int:
        value = self.raw(name)
        if value is None:
            return default
        try:
            number = int(value)
        except ValueError:
            raise SettingsError(f"{PREFIX}{name} must be a whole number, got {value!r}") from None
        if number < minimum or (maximum is not None and number > maximum):
            upper = f" and at most {maximum}" if maximum is not None else ""
            raise SettingsError(f"{PREFIX}{name} must be at least {minimum}{upper}, got {number}")
        return number

    def flag(self, name: str, default: bool) -> bool:
        value = self.raw(name)
        if value is None:
            return default
        lowered = value.lower()
        if lowered in {"1", "true", "yes", "on"}:
            return True
        if lowered in {"0", "false", "no", "off"}:
            return False
        raise SettingsError(f"{PREFIX}{name} must be true or false, got {value!r}")

    def choice(self, name: str, default: str, choices: tuple[str, ...]) -> str:
        value = self.text(name, default)
        if value not in choices:
            raise SettingsError(
                f"{PREFIX}{name} must be one of {', '.join(choices)}, got {value!r}"
            )
        return value

    def words(self, name: str, default: tuple[str, ...] = ()) -> tuple[str, ...]:
        value = self.raw(name)
        if value is None:
            return default
        return tuple(item.strip() for item in value.replace(",", " ").split() if item.strip())

    def url(self, name: str, default: str | None = None, *, schemes: tuple[str, ...]) -> str:
        value = self.text(name, default)
        scheme = value.split(":", 1)[0].lower() if ":" in value else ""
        if scheme not in schemes:
            raise SettingsError(
                f"{PREFIX}{name} must be a URL starting with "
                f"{' or '.join(s + '://' for s in schemes)}, got {redact_password(value)!r}"
            )
        return value.rstrip("/") if scheme in {"http", "https"} else value

    def networks(self, name: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        networks = []
        for item in self.words(name):
            try:
                networks.append(ipaddress.ip_network(item, strict=False))
            except ValueError:
                raise SettingsError(
                    f"{PREFIX}{name} must list IP addresses or CIDR networks, got {item!r}"
                ) from None
        return tuple(networks)

    def json_object(self, name: str) -> dict[str, str] | None:
        value = self.raw(name)
        if value is None:
            return None
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            parsed = None
        if not isinstance(parsed, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in parsed.items()
        ):
            raise SettingsError(
                f"{PREFIX}{name} must be a JSON object of strings, "
                """e.g. {"read-posts": "Read posts"}"""
            )
        return parsed

    def secret_key(self, name: str, *, min_bytes: int = 32) -> bytes:
        """A random secret given as hex or base64url text of at least `min_bytes` bytes."""
        value = self.text(name)
        decoded = decode_secret(value)
        if decoded is None or len(decoded) < min_bytes:
            raise SettingsError(
                f"{PREFIX}{name} must be at least {min_bytes} random bytes, written as hex or "
                "base64url (try: python -c "
                f'"import secrets; print(secrets.token_hex({min_bytes}))")'
            )
        if len(set(decoded)) < 8:
            raise SettingsError(f"{PREFIX}{name} does not look random; generate a fresh one")
        return decoded


# [scheme://]user:password@ -> [scheme://]user:***@, up to the last "@" (over-redacting is safe).
_URL_PASSWORD = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://[^:@/]*):.*@")
_BARE_PASSWORD = re.compile(r"^([^:@/]*):.*@")


def redact_password(url: str) -> str:
    """The URL with the password of its userinfo hidden, for error messages."""
    pattern = _URL_PASSWORD if "://" in url else _BARE_PASSWORD
    return pattern.sub(r"\1:***@", url, count=1)


def decode_secret(value: str) -> bytes | None:
    """Decode hex, else base64url (padding optional); None when it is neither."""
    try:
        return bytes.fromhex(value)
    except ValueError:
        pass
    try:
        return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError):
        return None
