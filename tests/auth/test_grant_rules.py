"""The grants' rules, on in-memory fakes of the protocol core's ports.

No database, no HTTP: each test sets up what the ports know, runs the token
endpoint's core, and looks at what it answered, issued, revoked and reported.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from portcullis_auth.oauth2.audit import AuditEvent
from portcullis_auth.oauth2.errors import (
    InvalidClientError,
    InvalidGrantError,
    InvalidScopeError,
    OAuth2Error,
    RateLimitedError,
    TooManyAttemptsError,
    UnauthorizedClientError,
    UnsupportedGrantTypeError,
)
from portcullis_auth.oauth2.grants.base import GrantContext
from portcullis_auth.oauth2.pkce import challenge_of
from portcullis_auth.oauth2.ports import CallerGone
from portcullis_auth.oauth2.request import TokenRequest
from portcullis_auth.oauth2.responses import TokenResponse
from portcullis_auth.oauth2.token_endpoint import handle_token_request
from portcullis_auth.records import (
    AuthorizationCode,
    Client,
    DeviceAuthorization,
    FoundRefreshToken,
    IssuedAccessToken,
    RateLimited,
    RefreshFamily,
    RefreshToken,
    StartedDeviceAuthorization,
    User,
)
from portcullis_shared.scopes import ScopeRegistry

NOW = datetime.now(UTC)
ADA = User(id=uuid.uuid4(), is_admin=False, active=True)
ROOT = User(id=uuid.uuid4(), is_admin=True, active=True)
GRACE = 10


def client(**changes: object) -> Client:
    fields: dict[str, object] = {
        "id": "client_web",
        "grant_types": ("password", "refresh_token", "client_credentials"),
        "scopes": ("read-posts", "write-posts", "admin"),
        "default_scopes": ("read-posts",),
        "audiences": ("posts", "billing"),
        "redirect_uris": ("https://app.example/callback",),
        "name": "an app",
        "first_party": True,
        "personal_access": False,
        "introspect": False,
        "version": 1,
        "secret_hash": "s" * 64,
    }
    fields.update(changes)
    return Client(**fields)  # type: ignore[arg-type]


@dataclass
class Clients:
    known: dict[str, Client] = field(default_factory=dict)

    async def authenticate(self, client_id: str, secret: str | None) -> Client | None:
        found = self.known.get(client_id)
        return found if found is not None and secret == "secret" else None

    async def find(self, client_id: str) -> Client | None:
        return self.known.get(client_id)


@dataclass
class Users:
    passwords: dict[str, tuple[str, User]] = field(default_factory=dict)
    failure: Exception | None = None
    busy: Exception | None = None

    def refuse_if_busy(self, client_ip: str) -> None:
        if self.busy is not None:
            raise self.busy

    async def authenticate(
        self,
        username: str,
        password: str,
        *,
        client_ip: str | None = None,
        caller_gone: CallerGone | None = None,
    ) -> User | None:
        if self.failure is not None:
            raise self.failure
        known = self.passwords.get(username)
        return known[1] if known is not None and known[0] == password else None


@dataclass
class Throttle:
    wait: int = 0
    log: list[str] = field(default_factory=list)

    async def begin_attempt(self, username: str, client_ip: str) -> int:
        self.log.append(f"begin {username}")
        return self.wait

    async def succeeded(self, username: str, client_ip: str) -> None:
        self.log.append(f"succeeded {username}")

    async def withdraw(self, username: str, client_ip: str) -> None:
        self.log.append(f"withdraw {username}")


@dataclass
class Budgets:
    spent: list[str] = field(default_factory=list)
    past: set[str] = field(default_factory=set)
    """Clients past their budget."""

    def spend(self, client: Client, client_ip: str | None) -> RateLimited | None:
        self.spent.append(client.id)
        return RateLimited(limit=10, window=60, retry_after=7) if client.id in self.past else None


@dataclass
class Tokens:
    """The grant store and the token issuer: refresh tokens by value, and what was done."""

    refresh_tokens: dict[str, FoundRefreshToken] = field(default_factory=dict)
    unused_successors: set[uuid.UUID] = field(default_factory=set)
    revoked: list[tuple[uuid.UUID, str]] = field(default_factory=list)
    issued: list[dict[str, object]] = field(default_factory=list)
    families: list[dict[str, object]] = field(default_factory=list)
    rotated: list[FoundRefreshToken] = field(default_factory=list)
    lose_the_race: bool = False

    async def find_refresh_token(self, refresh_token: str) -> FoundRefreshToken | None:
        return self.refresh_tokens.get(refresh_token)

    async def successor_is_unused(self, token_id: uuid.UUID) -> bool:
        return token_id in self.unused_successors

    async def revoke_family(self, family: RefreshFamily, reason: str) -> None:
        self.revoked.append((family.id, reason))

    async def issue_access_token(
        self,
        *,
        client: Client,
        user: User | None,
        scopes: frozenset[str],
        audience: str,
        sid: uuid.UUID | None = None,
        only_write: bool = False,
    ) -> IssuedAccessToken:
        self.issued.append(
            {"client": client.id, "user": user, "scopes": scopes, "audience": audience}
        )
        jti = uuid.uuid4()
        return IssuedAccessToken("access", jti, sid or jti, 900, scopes)

    async def start_family(
        self,
        *,
        client: Client,
        user: User | None,
        grant_type: str,
        scopes: frozenset[str],
        audience: str,
        refresh: bool = True,
    ) -> tuple[uuid.UUID, str | None]:
        self.families.append({"grant_type": grant_type, "scopes": scopes, "audience": audience})
        return uuid.uuid4(), "refresh" if refresh else None

    async def rotate(
        self, found: FoundRefreshToken, *, client: Client, scopes: frozenset[str], audience: str
    ) -> tuple[IssuedAccessToken, str] | None:
        if self.lose_the_race:
            return None
        self.rotated.append(found)
        return IssuedAccessToken("access", uuid.uuid4(), found.family.id, 900, scopes), "next"


@dataclass
class Codes:
    """The code store: codes by value, and what was redeemed, linked and revoked."""

    codes: dict[str, AuthorizationCode] = field(default_factory=dict)
    redeemed: set[uuid.UUID] = field(default_factory=set)
    links: dict[uuid.UUID, uuid.UUID] = field(default_factory=dict)
    revoked: list[uuid.UUID] = field(default_factory=list)

    async def find_code(self, code: str) -> AuthorizationCode | None:
        return self.codes.get(code)

    async def redeem_code(self, code_id: uuid.UUID) -> bool:
        if code_id in self.redeemed:
            return False
        self.redeemed.add(code_id)
        return True

    async def link_family(self, code_id: uuid.UUID, family_id: uuid.UUID) -> None:
        self.links[code_id] = family_id

    async def revoke_redeemed(self, code_id: uuid.UUID) -> None:
        self.revoked.append(code_id)


@dataclass
class Devices:
    """The device store: authorizations by device code, and the polls it saw."""

    known: dict[str, DeviceAuthorization] = field(default_factory=dict)
    too_fast: bool = False
    issued: list[uuid.UUID] = field(default_factory=list)

    async def start(
        self, *, client: Client, scopes: frozenset[str], audience: str
    ) -> StartedDeviceAuthorization:
        return StartedDeviceAuthorization("device", "BCDF-GHJK", 600, 5)

    async def find_device_code(self, device_code: str) -> DeviceAuthorization | None:
        return self.known.get(device_code)

    async def record_poll(self, authorization_id: uuid.UUID) -> bool:
        return not self.too_fast

    async def mark_issued(self, authorization_id: uuid.UUID, family_id: uuid.UUID) -> bool:
        if authorization_id in self.issued:
            return False
        self.issued.append(authorization_id)
        return True


@dataclass
class Core:
    clients: Clients = field(default_factory=Clients)
    users: Users = field(default_factory=Users)
    throttle: Throttle = field(default_factory=Throttle)
    budgets: Budgets = field(default_factory=Budgets)
    tokens: Tokens = field(default_factory=Tokens)
    codes: Codes = field(default_factory=Codes)
    devices: Devices = field(default_factory=Devices)
    events: list[AuditEvent] = field(default_factory=list)

    async def ask(self, client_id: str = "client_web", **form: str) -> TokenResponse:
        context = GrantContext(
            clients=self.clients,
            client_rate_limit=self.budgets,
            users=self.users,
            throttle=self.throttle,
            grants=self.tokens,
            codes=self.codes,
            devices=self.devices,
            issuer=self.tokens,
            audit=self.events.append,
            scopes=ScopeRegistry(),
            refresh_grace=GRACE,
        )
        request = TokenRequest(
            form={"client_id": client_id, "client_secret": "secret", **form},
            client_ip="203.0.113.7",
        )
        return await handle_token_request(request, context)

    def event_names(self) -> list[str]:
        return [event.name for event in self.events]


@pytest.fixture
def core() -> Core:
    core = Core()
    core.clients.known["client_web"] = client()
    core.users.passwords["ada@example.com"] = ("correct horse", ADA)
    core.users.passwords["root@example.com"] = ("correct horse", ROOT)
    return core


def family_token(
    core: Core,
    *,
    used_ago: float | None = None,
    user: User | None = ADA,
    scopes: tuple[str, ...] = ("read-posts", "write-posts"),
    **family_changes: object,
) -> FoundRefreshToken:
    """A refresh token of a live family, known to the grant store as "rt"."""
    family_fields: dict[str, object] = {
        "id": uuid.uuid4(),
        "client_id": "client_web",
        "user_id": None if user is None else user.id,
        "grant_type": "password",
        "scopes": scopes,
        "audience": "posts",
        "expires_at": NOW + timedelta(days=90),
        "revoked_at": None,
    }
    family_fields.update(family_changes)
    family = RefreshFamily(**family_fields)  # type: ignore[arg-type]
    token = RefreshToken(
        id=uuid.uuid4(),
        family_id=family.id,
        created_at=NOW - timedelta(minutes=1),
        expires_at=NOW + timedelta(days=30),
        used_at=None if used_ago is None else datetime.now(UTC) - timedelta(seconds=used_ago),
        revoked_at=None,
    )
    found = FoundRefreshToken(token, family, user)
    core.tokens.refresh_tokens["rt"] = found
    return found


# --- every grant: the client ---------------------------------------------------------


async def test_an_unproven_client_is_invalid_client(core: Core) -> None:
    with pytest.raises(InvalidClientError):
        await core.ask("client_unknown", grant_type="client_credentials")
    assert core.tokens.issued == []


async def test_a_grant_the_client_may_not_use_is_unauthorized_client(core: Core) -> None:
    core.clients.known["client_web"] = client(grant_types=("refresh_token",))
    with pytest.raises(UnauthorizedClientError):
        await core.ask(grant_type="password", username="ada@example.com", password="x")
    assert core.throttle.log == []  # refused before any password work


async def test_a_client_past_its_budget_is_refused_before_its_grant_runs(core: Core) -> None:
    core.budgets.past.add("client_web")
    with pytest.raises(RateLimitedError) as refused:
        await core.ask(grant_type="password", username="ada@example.com", password="x")
    assert refused.value.status_code == 429
    assert refused.value.to_dict()["error"] == "temporarily_unavailable"
    assert refused.value.headers["Retry-After"] == "7"
    assert refused.value.headers["RateLimit-Limit"] == "10"
    assert refused.value.headers["RateLimit-Policy"] == "10;w=60"
    assert core.throttle.log == []  # no password work
    assert core.tokens.issued == []


async def test_only_an_authenticated_client_spends_its_budget(core: Core) -> None:
    with pytest.raises(InvalidClientError):
        await core.ask("client_unknown", grant_type="client_credentials")
    await core.ask(grant_type="client_credentials")
    assert core.budgets.spent == ["client_web"]


async def test_an_unknown_grant_type_is_unsupported(core: Core) -> None:
    with pytest.raises(UnsupportedGrantTypeError):
        await core.ask(grant_type="implicit")


async def test_a_public_client_gets_no_confidential_grant(core: Core) -> None:
    core.clients.known["client_web"] = client(secret_hash=None)
    with pytest.raises(UnauthorizedClientError):
        await core.ask(grant_type="client_credentials")


# --- password (RFC 6749 §4.3) ---------------------------------------------------------


async def test_a_password_login_opens_a_family_and_reports_it(core: Core) -> None:
    answer = await core.ask(
        grant_type="password", username="ada@example.com", password="correct horse"
    )
    assert answer.refresh_token == "refresh"
    assert core.tokens.families == [
        {"grant_type": "password", "scopes": {"read-posts"}, "audience": "posts"}
    ]
    assert core.tokens.issued[0]["user"] == ADA
    assert core.throttle.log == ["begin ada@example.com", "succeeded ada@example.com"]
    (event,) = core.events
    assert event.name == "token_issued"
    assert event.fields["grant_type"] == "password"
    assert event.fields["user"] == ADA.id
    assert event.fields["sid"] == answer.access_token.sid


async def test_without_the_refresh_grant_a_login_gets_no_refresh_token(core: Core) -> None:
    core.clients.known["client_web"] = client(grant_types=("password",))
    answer = await core.ask(
        grant_type="password", username="ada@example.com", password="correct horse"
    )
    assert answer.refresh_token is None
    assert core.tokens.families == []


async def test_a_wrong_password_issues_nothing_and_is_reported(core: Core) -> None:
    with pytest.raises(InvalidGrantError):
        await core.ask(grant_type="password", username="ada@example.com", password="guess")
    assert core.tokens.issued == []
    assert core.event_names() == ["login_failed"]
    assert core.throttle.log == ["begin ada@example.com"]  # counted, never forgiven


async def test_a_throttled_login_is_429_without_a_password_check(core: Core) -> None:
    core.throttle.wait = 30
    with pytest.raises(TooManyAttemptsError) as refused:
        await core.ask(grant_type="password", username="ada@example.com", password="x")
    assert refused.value.headers["Retry-After"] == "30"
    assert core.throttle.log == ["begin ada@example.com"]
    assert core.event_names() == ["login_throttled"]


async def test_a_password_never_checked_is_not_counted_as_a_failure(core: Core) -> None:
    core.users.failure = RuntimeError("the hashing queue is full")
    with pytest.raises(RuntimeError):
        await core.ask(grant_type="password", username="ada@example.com", password="x")
    assert core.throttle.log == ["begin ada@example.com", "withdraw ada@example.com"]


async def test_a_login_with_no_room_to_wait_is_refused_before_any_work(core: Core) -> None:
    """A flood of logins must cost its refusals nothing: no throttle count, no read."""
    core.users.busy = RuntimeError("the hashing queue is full")
    core.users.failure = AssertionError("the password was checked")
    with pytest.raises(RuntimeError, match="queue is full"):
        await core.ask(grant_type="password", username="ada@example.com", password="x")
    assert core.throttle.log == []


async def test_a_privileged_scope_needs_an_admin(core: Core) -> None:
    with pytest.raises(InvalidScopeError):
        await core.ask(
            grant_type="password",
            username="ada@example.com",
            password="correct horse",
            scope="admin",
        )
    answer = await core.ask(
        grant_type="password", username="root@example.com", password="correct horse", scope="admin"
    )
    assert answer.access_token.scopes == {"admin"}


# --- client credentials (RFC 6749 §4.4) ---------------------------------------------------


async def test_client_credentials_speak_for_the_client_alone(core: Core) -> None:
    answer = await core.ask(grant_type="client_credentials", scope="admin", resource="billing")
    assert answer.refresh_token is None
    assert core.tokens.issued == [
        {"client": "client_web", "user": None, "scopes": {"admin"}, "audience": "billing"}
    ]
    assert core.events[0].fields["user"] is None


# --- refresh (RFC 6749 §6, RFC 9700 §4.14.2) ---------------------------------------------


async def test_a_refresh_rotates_and_may_narrow(core: Core) -> None:
    found = family_token(core)
    answer = await core.ask(grant_type="refresh_token", refresh_token="rt", scope="read-posts")
    assert answer.refresh_token == "next"
    assert core.tokens.rotated == [found]
    assert answer.access_token.scopes == {"read-posts"}
    assert core.event_names() == ["token_refreshed"]


async def test_a_refresh_never_widens(core: Core) -> None:
    family_token(core, scopes=("read-posts",))
    with pytest.raises(InvalidScopeError):
        await core.ask(grant_type="refresh_token", refresh_token="rt", scope="read-posts admin")
    assert core.tokens.rotated == []


async def test_another_clients_refresh_token_is_refused_and_left_alone(core: Core) -> None:
    core.clients.known["client_other"] = client(id="client_other")
    family_token(core)
    with pytest.raises(InvalidGrantError):
        await core.ask("client_other", grant_type="refresh_token", refresh_token="rt")
    assert core.tokens.rotated == []
    assert core.tokens.revoked == []


async def test_a_repeat_inside_the_grace_window_is_only_refused(core: Core) -> None:
    found = family_token(core, used_ago=1)
    core.tokens.unused_successors.add(found.token.id)
    with pytest.raises(InvalidGrantError):
        await core.ask(grant_type="refresh_token", refresh_token="rt")
    assert core.tokens.revoked == []
    assert core.event_names() == ["refresh_token_repeated"]


@pytest.mark.parametrize(
    ("used_ago", "successor_unused"),
    [(GRACE + 5, True), (1, False)],
    ids=["after-the-window", "successor-used"],
)
async def test_any_other_repeat_revokes_the_family(
    core: Core, used_ago: float, successor_unused: bool
) -> None:
    found = family_token(core, used_ago=used_ago)
    if successor_unused:
        core.tokens.unused_successors.add(found.token.id)
    with pytest.raises(InvalidGrantError) as refused:
        await core.ask(grant_type="refresh_token", refresh_token="rt")
    assert refused.value.keep_changes  # the revocation is committed though the request fails
    assert core.tokens.revoked == [(found.family.id, "refresh_token_reuse")]
    assert core.tokens.rotated == []
    assert core.event_names() == ["refresh_token_reused"]


@pytest.mark.parametrize(
    "changes",
    [
        {"expires_at": NOW - timedelta(seconds=1)},
        {"revoked_at": NOW},
        {"grant_type": "client_credentials"},
    ],
    ids=["family-expired", "family-revoked", "grant-no-longer-allowed"],
)
async def test_a_family_that_may_no_longer_be_refreshed_is_invalid_grant(
    core: Core,
    changes: dict[str, Any],  # the family's fields, each of its own type
) -> None:
    if changes.get("grant_type") == "client_credentials":
        core.clients.known["client_web"] = client(grant_types=("refresh_token", "password"))
    family_token(core, **changes)
    with pytest.raises(InvalidGrantError):
        await core.ask(grant_type="refresh_token", refresh_token="rt")
    assert core.tokens.rotated == []
    assert core.tokens.revoked == []


@pytest.mark.parametrize(
    ("user", "scopes"),
    [
        (User(id=ADA.id, is_admin=False, active=False), ("read-posts",)),
        (ADA, ("admin",)),  # an admin scope, its user no longer an admin
        (None, ("read-posts",)),  # the family's user is gone
    ],
    ids=["disabled", "admin-removed", "user-gone"],
)
async def test_a_user_who_lost_trust_refreshes_no_more(
    core: Core, user: User | None, scopes: tuple[str, ...]
) -> None:
    family_token(core, user=user, scopes=scopes, user_id=ADA.id)
    with pytest.raises(InvalidGrantError):
        await core.ask(grant_type="refresh_token", refresh_token="rt")
    assert core.tokens.rotated == []


async def test_a_rotation_lost_to_a_concurrent_one_is_invalid_grant(core: Core) -> None:
    family_token(core)
    core.tokens.lose_the_race = True
    with pytest.raises(OAuth2Error) as refused:
        await core.ask(grant_type="refresh_token", refresh_token="rt")
    assert refused.value.error == "invalid_grant"
    assert core.events == []


# --- authorization code (RFC 6749 §4.1.3, RFC 7636) -------------------------------------

VERIFIER = "v" * 43


def issued_code(core: Core, **changes: object) -> AuthorizationCode:
    fields: dict[str, object] = {
        "id": uuid.uuid4(),
        "client_id": "client_web",
        "user": ADA,
        "redirect_uri": "https://app.example/callback",
        "scopes": ("read-posts",),
        "audience": "posts",
        "code_challenge": challenge_of(VERIFIER),
        "expires_at": datetime.now(UTC) + timedelta(seconds=60),
        "used_at": None,
    }
    fields.update(changes)
    code = AuthorizationCode(**fields)  # type: ignore[arg-type]
    core.codes.codes["code"] = code
    return code


def redeem(core: Core, **form: str) -> Awaitable[TokenResponse]:
    return core.ask(
        grant_type="authorization_code",
        **{
            "code": "code",
            "redirect_uri": "https://app.example/callback",
            "code_verifier": VERIFIER,
            **form,
        },
    )


@pytest.fixture
def code_client(core: Core) -> Core:
    core.clients.known["client_web"] = client(grant_types=("authorization_code", "refresh_token"))
    return core


async def test_a_code_is_redeemed_once_for_a_family(code_client: Core) -> None:
    code = issued_code(code_client)
    answer = await redeem(code_client)
    assert answer.refresh_token == "refresh"
    assert code_client.codes.redeemed == {code.id}
    assert code_client.codes.links == {code.id: answer.access_token.sid}
    assert code_client.event_names() == ["token_issued"]


async def test_a_code_used_again_is_refused_and_ends_what_it_issued(code_client: Core) -> None:
    code = issued_code(code_client, used_at=NOW)
    with pytest.raises(InvalidGrantError) as refused:
        await redeem(code_client)
    assert refused.value.keep_changes
    assert code_client.codes.revoked == [code.id]
    assert code_client.tokens.issued == []


async def test_a_code_redeemed_by_a_concurrent_request_counts_as_used_twice(
    code_client: Core,
) -> None:
    code = issued_code(code_client)
    code_client.codes.redeemed.add(code.id)  # the other request marked it used first
    with pytest.raises(InvalidGrantError):
        await redeem(code_client)
    assert code_client.codes.revoked == [code.id]
    assert code_client.tokens.issued == []


@pytest.mark.parametrize(
    ("form", "changes", "error"),
    [
        ({"code_verifier": "w" * 43}, {}, InvalidGrantError),
        ({"code_verifier": "short"}, {}, InvalidGrantError),
        ({}, {"code_challenge": challenge_of("x" * 43)}, InvalidGrantError),
        ({"redirect_uri": "https://app.example/other"}, {}, InvalidGrantError),
        ({}, {"expires_at": NOW - timedelta(seconds=1)}, InvalidGrantError),
        ({}, {"client_id": "client_other"}, InvalidGrantError),
    ],
    ids=[
        "wrong-verifier",
        "malformed-verifier",
        "other-challenge",
        "other-redirect",
        "expired",
        "other-client",
    ],
)
async def test_a_code_is_bound_to_its_verifier_redirect_lifetime_and_client(
    code_client: Core,
    form: dict[str, str],
    changes: dict[str, object],
    error: type[OAuth2Error],
) -> None:
    issued_code(code_client, **changes)
    with pytest.raises(error):
        await redeem(code_client, **form)
    assert code_client.codes.redeemed == set()  # a failed attempt uses nothing up
    assert code_client.codes.revoked == []


async def test_a_code_without_a_verifier_is_invalid_request(code_client: Core) -> None:
    issued_code(code_client)
    with pytest.raises(OAuth2Error) as refused:
        await code_client.ask(
            grant_type="authorization_code",
            code="code",
            redirect_uri="https://app.example/callback",
        )
    assert refused.value.error == "invalid_request"


async def test_without_the_refresh_grant_a_code_still_opens_a_family(core: Core) -> None:
    core.clients.known["client_web"] = client(grant_types=("authorization_code",))
    issued_code(core)
    answer = await redeem(core)
    assert answer.refresh_token is None
    assert core.tokens.families[0]["grant_type"] == "authorization_code"


# --- device authorization (RFC 8628 §3.4, §3.5) ------------------------------------------

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"


def device(core: Core, status: str, **changes: object) -> DeviceAuthorization:
    fields: dict[str, object] = {
        "id": uuid.uuid4(),
        "client_id": "client_web",
        "status": status,
        "user": ADA if status in {"approved", "denied", "issued"} else None,
        "scopes": ("read-posts",),
        "audience": "posts",
        "expires_at": datetime.now(UTC) + timedelta(minutes=10),
    }
    fields.update(changes)
    found = DeviceAuthorization(**fields)  # type: ignore[arg-type]
    core.devices.known["device"] = found
    core.clients.known["client_web"] = client(grant_types=(DEVICE_GRANT, "refresh_token"))
    return found


@pytest.mark.parametrize(
    ("status", "error", "keeps"),
    [
        ("pending", "authorization_pending", True),
        ("denied", "access_denied", True),
        ("issued", "invalid_grant", False),
    ],
)
async def test_a_device_hears_what_its_user_said(
    core: Core, status: str, error: str, keeps: bool
) -> None:
    device(core, status)
    with pytest.raises(OAuth2Error) as refused:
        await core.ask(grant_type=DEVICE_GRANT, device_code="device")
    assert refused.value.error == error
    assert refused.value.keep_changes is keeps  # the poll is noted
    assert core.tokens.issued == []


async def test_a_device_polling_too_fast_is_told_to_slow_down(core: Core) -> None:
    device(core, "approved")
    core.devices.too_fast = True
    with pytest.raises(OAuth2Error) as refused:
        await core.ask(grant_type=DEVICE_GRANT, device_code="device")
    assert refused.value.error == "slow_down"
    assert core.tokens.issued == []


async def test_an_expired_device_code_is_expired_token(core: Core) -> None:
    device(core, "approved", expires_at=NOW - timedelta(seconds=1))
    with pytest.raises(OAuth2Error) as refused:
        await core.ask(grant_type=DEVICE_GRANT, device_code="device")
    assert refused.value.error == "expired_token"


async def test_an_approved_device_gets_its_tokens_once(core: Core) -> None:
    found = device(core, "approved")
    answer = await core.ask(grant_type=DEVICE_GRANT, device_code="device")
    assert answer.refresh_token == "refresh"
    assert core.devices.issued == [found.id]
    with pytest.raises(OAuth2Error) as again:
        await core.ask(grant_type=DEVICE_GRANT, device_code="device")
    assert again.value.error == "invalid_grant"
