"""What every grant is: a `grant_type`, a validation and an issuance (RFC 6749 §4).

A grant first validates the request against what the ports say (the client,
the user, the refresh token) and writes nothing; then it issues what the
validated request allows. So the rules of a grant are unit-tested with
in-memory fakes of the ports, and a refused request leaves no trace (but a
detected refresh-token reuse, which the endpoint answers by ending the
family).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar, Generic, TypeVar

from portcullis_auth.oauth2.errors import InvalidGrantError, UnauthorizedClientError
from portcullis_auth.oauth2.ports import (
    AuditHook,
    ClientRateLimit,
    ClientStore,
    CodeStore,
    DeviceStore,
    GrantStore,
    LoginThrottle,
    TokenIssuer,
    UserAuthenticator,
)
from portcullis_auth.oauth2.request import TokenRequest
from portcullis_auth.oauth2.responses import TokenResponse
from portcullis_auth.records import Client, User
from portcullis_shared.scopes import ScopeRegistry


@dataclass(frozen=True, slots=True)
class GrantContext:
    """The ports and the policy a token request is answered with."""

    clients: ClientStore
    client_rate_limit: ClientRateLimit
    """Each authenticated client's budget of token requests."""
    users: UserAuthenticator
    throttle: LoginThrottle
    grants: GrantStore
    codes: CodeStore
    devices: DeviceStore
    issuer: TokenIssuer
    audit: AuditHook
    scopes: ScopeRegistry
    refresh_grace: int
    """Seconds in which a same-client repeat of a rotated refresh token is not reuse."""


@dataclass(frozen=True, slots=True)
class Plan:
    """A validated token request: what will be issued, to whom."""

    client: Client
    user: User | None
    """None: the token speaks for the client."""
    scopes: frozenset[str]
    audience: str


PlanT = TypeVar("PlanT", bound=Plan)


class Grant(ABC, Generic[PlanT]):
    grant_type: ClassVar[str]
    confidential_only: ClassVar[bool] = False
    """Grants a public client may never use (it cannot keep a secret)."""

    def __init__(self, context: GrantContext) -> None:
        self.context = context

    def check_client(self, client: Client) -> None:
        """RFC 6749 §5.2 `unauthorized_client`: the client may not use this grant."""
        if self.grant_type not in client.grant_types:
            raise UnauthorizedClientError(f"the client may not use the {self.grant_type} grant")
        if self.confidential_only and client.is_public:
            raise UnauthorizedClientError(
                f"a public client may not use the {self.grant_type} grant"
            )

    @abstractmethod
    async def validate(self, request: TokenRequest, client: Client) -> PlanT:
        """Check the request of an authenticated `client`; write nothing. Raises an
        OAuth2Error for a request that cannot be granted."""

    @abstractmethod
    async def issue(self, plan: PlanT) -> TokenResponse:
        """Issue what a validated request allows."""


def check_still_allowed(
    client: Client,
    grant_type: str,
    scopes: tuple[str, ...],
    user: User | None,
    registry: ScopeRegistry,
) -> None:
    """Checked again whenever a grant issues later than it was given (a refresh, a code
    redeemed, a device approved): the client may still use the grant and the scopes,
    and the user is still active and still holds them."""
    if grant_type not in client.grant_types:
        raise InvalidGrantError("the client may no longer use the grant this token came from")
    if not set(scopes) <= set(client.scopes) & registry.names:
        raise InvalidGrantError("the client is no longer allowed this grant's scopes")
    if user is None:
        return
    if not user.active:
        raise InvalidGrantError("the user can no longer be issued tokens")
    if not user.is_admin and any(registry.is_privileged(s) for s in scopes):
        raise InvalidGrantError("the user no longer holds this grant's scopes")
