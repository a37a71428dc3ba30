"""The grant registry: `grant_type` -> grant class (RFC 6749 §4, §6)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from portcullis_auth.oauth2.errors import UnsupportedGrantTypeError
from portcullis_auth.oauth2.grants.authorization_code import AuthorizationCodeGrant
from portcullis_auth.oauth2.grants.base import Grant, GrantContext
from portcullis_auth.oauth2.grants.client_credentials import ClientCredentialsGrant
from portcullis_auth.oauth2.grants.device_code import DeviceCodeGrant
from portcullis_auth.oauth2.grants.password import PasswordGrant
from portcullis_auth.oauth2.grants.refresh_token import RefreshTokenGrant


class GrantRegistry:
    def __init__(self, grants: Iterable[type[Grant[Any]]]) -> None:
        self._grants = {grant.grant_type: grant for grant in grants}

    @property
    def grant_types(self) -> list[str]:
        return sorted(self._grants)

    def create(self, grant_type: str, context: GrantContext) -> Grant[Any]:
        grant = self._grants.get(grant_type)
        if grant is None:
            # Not echoed: what the server does not know may be a secret in the wrong field.
            raise UnsupportedGrantTypeError(
                "unsupported grant_type; the server's metadata lists grant_types_supported"
            )
        return grant(context)


DEFAULT_GRANTS = GrantRegistry(
    [
        AuthorizationCodeGrant,
        DeviceCodeGrant,
        PasswordGrant,
        ClientCredentialsGrant,
        RefreshTokenGrant,
    ]
)
