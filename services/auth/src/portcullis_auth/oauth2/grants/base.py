"""What every grant is: a `grant_type` and one async method (RFC 6749 §4)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

from portcullis_auth.db.models import OAuthClient
from portcullis_auth.oauth2.errors import UnauthorizedClientError
from portcullis_auth.oauth2.request import TokenRequest
from portcullis_auth.security.login_throttle import LoginThrottle
from portcullis_auth.services.tokens import TokenResponse, TokenService
from portcullis_auth.services.users import UserService
from portcullis_auth.settings import TokenSettings
from portcullis_shared.scopes import ScopeRegistry


@dataclass(frozen=True, slots=True)
class GrantContext:
    """The services a grant works with, bound to the request's session."""

    tokens: TokenService
    users: UserService
    throttle: LoginThrottle
    scopes: ScopeRegistry
    settings: TokenSettings


class Grant(ABC):
    grant_type: ClassVar[str]
    confidential_only: ClassVar[bool] = False
    """Grants a public client may never use (it cannot keep a secret)."""

    def __init__(self, context: GrantContext) -> None:
        self.context = context

    def check_client(self, client: OAuthClient) -> None:
        """RFC 6749 §5.2 `unauthorized_client`: the client may not use this grant."""
        if self.grant_type not in client.grant_types:
            raise UnauthorizedClientError(f"the client may not use the {self.grant_type} grant")
        if self.confidential_only and client.is_public:
            raise UnauthorizedClientError(
                f"a public client may not use the {self.grant_type} grant"
            )

    @abstractmethod
    async def issue(self, request: TokenRequest, client: OAuthClient) -> TokenResponse:
        """Answer a token request from an authenticated `client`, or raise an OAuth2Error."""
