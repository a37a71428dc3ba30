"""Refresh-token families as a state machine (RFC 6749 §6, RFC 7009, RFC 7662, RFC 9700
§4.14.2), driven through the real token, revocation and introspection endpoints on
Postgres and Redis.

Rotation, the grace window, narrowing and revocation each have tests of their own in
test_grants.py and test_revocation_endpoints.py. What those cannot show is how the rules
hold up in sequences nobody wrote down: a narrow after a repeat inside the window, a revoke
of a token already used, a replay after another client's failed attempt. Hypothesis picks
the sequences; a model of each family says what every answer must be, and after every step
the store and the resource side's guard must agree with it:

- a family has at most one live refresh token, and while it lives, exactly the one the
  model names;
- a family ended by reuse or revocation stays ended: every refresh token of it is refused
  and every access token of it fails the guard;
- scopes never widen: asking for more than the family holds is `invalid_scope`, and what is
  issued is the family's scope or the narrower one asked for;
- a revoked access token is inactive to introspection and refused by the guard, and no
  other token is.

The refresh grant reads the wall clock, so time is moved on by moving every used token's
`used_at` back past the window rather than by sleeping. The window is set to its largest
value, 60 s, so the real seconds an example takes never carry a token out of it.

Hypothesis runs from a fixed seed and without its example database (not `derandomize`,
whose seed is a digest of the machine's code and so changes with every edit): every run,
here and in CI, plays the same sequences, a failure reproduces from the steps it prints,
and the time stays the same from run to run. The seed is one whose sequences reach every
outcome in EVERY_OUTCOME; the test checks that they still do, so an edit or a Hypothesis
upgrade that loses one fails loudly instead of quietly testing less. To explore further,
change SEED or raise max_examples locally. A failure shrinks by replaying sequences over
HTTP, which takes minutes; a pass takes about 15 s.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from collections import Counter
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

import asyncpg
import httpx
import pytest
import redis.asyncio as aioredis
from hypothesis import HealthCheck, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    MultipleResults,
    RuleBasedStateMachine,
    initialize,
    invariant,
    multiple,
    precondition,
    rule,
    run_state_machine_as_test,
)
from litestar import Litestar
from litestar.testing import AsyncTestClient

from portcullis_auth.oauth2.pkce import challenge_of
from portcullis_auth.settings import AuthSettings
from portcullis_shared.errors import InvalidTokenError
from portcullis_shared.jwks import StaticKeySource
from portcullis_shared.plugin import GuardConfig, PortcullisGuard
from portcullis_shared.revocation import RedisRevocationList, RevocationKeys
from tests.auth.conftest import ISSUER, Seed, basic_auth
from tests.auth.helpers import (
    TOKEN_URL,
    password_grant,
    refresh_grant,
    sign_in,
    unverified_claims,
)

T = TypeVar("T")

GRACE = 60
FAMILY_SCOPES = ("read-posts", "write-posts")
"""What a family may hold: the test client's scopes a user without the admin role gets."""
DEFAULT_SCOPES = frozenset({"read-posts"})
UNKNOWN_SCOPE = "no-such-scope"
NEVER_IN_A_FAMILY = ("admin", UNKNOWN_SCOPE)
"""A privileged scope (the user is no admin) and a scope nobody configured."""
MAX_FAMILIES = 2
STEP_TIMEOUT = 30.0
CALLBACK = "https://app.example/callback"
CODE_VERIFIER = "v" * 43

SEED = 2
MACHINE_SETTINGS = settings(
    max_examples=20,
    stateful_step_count=15,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)

EVERY_OUTCOME = frozenset(
    {
        "family issued (authorization_code)",
        "family issued (password)",
        "refreshed",
        "narrowed",
        "widening refused",
        "repeat inside the window refused",
        "replay ended the family",
        "clock moved past the window",
        "refresh token revoked",
        "access token revoked",
        "another client refused",
        "dead family refused",
    }
)
"""What the seeded sequences must have done at least once, else the test proves little."""


@pytest.fixture
def settings_overrides() -> dict[str, str]:
    # Budgets off: a run introspects some 900 times from one address.
    return {"refresh_grace": str(GRACE), "rate_limits": "off"}


@dataclass(eq=False)
class RefreshTokenModel:
    value: str
    family: FamilyModel = field(repr=False)
    used: bool = False
    in_window: bool = False
    """Used, and the clock has not moved past the grace window since."""

    @property
    def token_hash(self) -> str:
        return hashlib.sha256(self.value.encode()).hexdigest()


@dataclass(eq=False)
class AccessTokenModel:
    value: str
    jti: str
    family: FamilyModel = field(repr=False)
    revoked: bool = False


@dataclass(eq=False)
class FamilyModel:
    sid: str
    scopes: frozenset[str]
    refresh_tokens: list[RefreshTokenModel] = field(default_factory=list)
    access_tokens: list[AccessTokenModel] = field(default_factory=list)
    alive: bool = True

    @property
    def current(self) -> RefreshTokenModel:
        return self.refresh_tokens[-1]

    def access_token_accepted(self, access: AccessTokenModel) -> bool:
        return self.alive and not access.revoked

    def refresh_token_active(self, token: RefreshTokenModel) -> bool:
        return self.alive and token is self.current


@dataclass
class World:
    """What the machine drives, all on the test's event loop; the machine runs in a thread
    of its own and hands each call over."""

    loop: asyncio.AbstractEventLoop
    http: AsyncTestClient[Litestar]
    db: asyncpg.Connection
    guard: PortcullisGuard
    client: tuple[str, str]
    other_client: tuple[str, str]
    seen: Counter[str] = field(default_factory=Counter)

    def run(self, work: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(work, self.loop).result(timeout=STEP_TIMEOUT)

    def post(self, url: str, data: dict[str, str], client: tuple[str, str]) -> httpx.Response:
        return self.run(self.http.post(url, data=data, headers=basic_auth(*client)))

    async def code_grant(self, params: dict[str, str]) -> httpx.Response:
        """RFC 6749 §4.1 with PKCE, for the signed-in user: the first-party client skips
        consent, so the authorization request answers with the code."""
        asked = await self.http.get(
            "/oauth/authorize",
            params={
                "response_type": "code",
                "client_id": self.client[0],
                "redirect_uri": CALLBACK,
                "state": "s",
                "code_challenge": challenge_of(CODE_VERIFIER),
                "code_challenge_method": "S256",
                **params,
            },
            follow_redirects=False,
        )
        assert asked.status_code == 303, asked.text
        code = parse_qs(urlsplit(asked.headers["location"]).query)["code"][0]
        return await self.http.post(
            TOKEN_URL,
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": CALLBACK,
                "code_verifier": CODE_VERIFIER,
            },
            headers=basic_auth(*self.client),
        )

    async def guard_accepts(self, token: str) -> bool:
        try:
            await self.guard.authenticate(token)
        except InvalidTokenError:
            return False
        return True


def _error(response: httpx.Response) -> str:
    assert response.status_code != 200, response.text
    assert response.headers["content-type"].startswith("application/json"), response.text
    error: str = response.json()["error"]
    return error


def _assert_refused(response: httpx.Response, status: int, error: str) -> None:
    assert (response.status_code, _error(response)) == (status, error), response.text


_FAMILY_ROWS = """
    SELECT g.id::text AS sid, g.revoked_at IS NOT NULL AS revoked,
           count(r.id) AS refresh_tokens,
           count(r.id) FILTER (WHERE r.revoked_at IS NULL) AS unrevoked,
           coalesce(
               array_agg(r.token_hash) FILTER (WHERE r.used_at IS NULL AND r.revoked_at IS NULL),
               '{}'
           ) AS live
    FROM grants AS g LEFT JOIN refresh_tokens AS r ON r.grant_id = g.id
    WHERE g.id = ANY($1::uuid[])
    GROUP BY g.id
"""
_ACCESS_ROWS = """
    SELECT jti::text AS jti, revoked_at IS NOT NULL AS revoked
    FROM access_tokens WHERE sid = ANY($1::uuid[])
"""
_MOVE_CLOCK = """
    UPDATE refresh_tokens SET used_at = used_at - make_interval(secs => $2)
    WHERE grant_id = ANY($1::uuid[]) AND used_at IS NOT NULL
"""


class RefreshFamilies(RuleBasedStateMachine):
    families = Bundle("families")
    used_tokens = Bundle("used_tokens")

    def __init__(self, world: World) -> None:
        super().__init__()
        self.world = world
        self.all_families: list[FamilyModel] = []
        self.touched: FamilyModel | None = None

    # --- steps -----------------------------------------------------------------------------

    @initialize(target=families, scopes=st.sets(st.sampled_from(FAMILY_SCOPES)))
    def first_family(self, scopes: set[str]) -> FamilyModel:
        return self._issue(frozenset(scopes), "authorization_code")

    @precondition(lambda self: len(self.all_families) < MAX_FAMILIES)
    @rule(
        target=families,
        scopes=st.sets(st.sampled_from(FAMILY_SCOPES)),
        grant_type=st.sampled_from(("authorization_code", "password")),
    )
    def issue(self, scopes: set[str], grant_type: str) -> FamilyModel:
        """A new family, by a code (PKCE) or, costing an argon2 check, by password."""
        return self._issue(frozenset(scopes), grant_type)

    @rule(target=used_tokens, family=families)
    def refresh(self, family: FamilyModel) -> MultipleResults[RefreshTokenModel]:
        return self._rotate(family, None)

    @rule(target=used_tokens, family=families, data=st.data())
    def narrow(
        self, family: FamilyModel, data: st.DataObject
    ) -> MultipleResults[RefreshTokenModel]:
        subset = data.draw(st.sets(st.sampled_from(sorted(family.scopes)), min_size=1))
        return self._rotate(family, frozenset(subset))

    @rule(family=families, data=st.data())
    def widen(self, family: FamilyModel, data: st.DataObject) -> None:
        """Asking for more than the family holds is refused and uses nothing up."""
        beyond = [
            scope for scope in (*FAMILY_SCOPES, *NEVER_IN_A_FAMILY) if scope not in family.scopes
        ]
        asked = family.scopes | {data.draw(st.sampled_from(beyond))}
        response = self._refresh(family.current, scope=" ".join(sorted(asked)))
        if family.alive or UNKNOWN_SCOPE in asked:
            # An unknown scope is refused before the token is even looked up.
            _assert_refused(response, 400, "invalid_scope")
            self._saw("widening refused")
        else:
            self._expect_dead(family, response)

    @rule(token=used_tokens)
    def replay(self, token: RefreshTokenModel) -> None:
        """A used token again: inside the window with its successor unused only refused,
        otherwise the end of the family."""
        family = token.family
        repeat = (
            family.alive
            and len(family.refresh_tokens) >= 2
            and token is family.refresh_tokens[-2]
            and token.in_window
        )
        response = self._refresh(token)
        _assert_refused(response, 400, "invalid_grant")
        self.touched = family
        if repeat:
            self._saw("repeat inside the window refused")
        elif family.alive:
            self._saw("replay ended the family")
            self._end(family)

    @precondition(
        lambda self: any(
            token.in_window for family in self.all_families for token in family.refresh_tokens
        )
    )
    @rule()
    def move_clock_past_the_window(self) -> None:
        sids = [uuid.UUID(family.sid) for family in self.all_families]
        self.world.run(self.world.db.execute(_MOVE_CLOCK, sids, float(GRACE + 1)))
        for family in self.all_families:
            for token in family.refresh_tokens:
                token.in_window = False
        self._saw("clock moved past the window")

    @rule(family=families, pick=st.integers(min_value=0, max_value=20))
    def revoke_refresh_token(self, family: FamilyModel, pick: int) -> None:
        """RFC 7009 §2.1: any refresh token of the family, used or not, takes the family."""
        token = family.refresh_tokens[pick % len(family.refresh_tokens)]
        self._revoke(token.value)
        self.touched = family
        if family.alive:
            self._saw("refresh token revoked")
            self._end(family)

    @rule(family=families, pick=st.integers(min_value=0, max_value=20))
    def revoke_access_token(self, family: FamilyModel, pick: int) -> None:
        access = family.access_tokens[pick % len(family.access_tokens)]
        self._revoke(access.value)
        access.revoked = True
        self._introspect_all([], [access])
        self.touched = family
        self._saw("access token revoked")

    @rule(family=families, revoke=st.booleans())
    def another_client_tries(self, family: FamilyModel, revoke: bool) -> None:
        """A refresh token works only for its client, and a failed attempt uses nothing up
        (RFC 6749 §6); another client's revocation is refused and leaves it (RFC 7009 §2.1)."""
        token = family.current.value
        if revoke:
            response = self.world.post("/oauth/revoke", {"token": token}, self.world.other_client)
            _assert_refused(response, 400, "unauthorized_client")
        else:
            response = self.world.run(
                refresh_grant(self.world.http, *self.world.other_client, token)
            )
            _assert_refused(response, 400, "invalid_grant")
        self.touched = family
        self._saw("another client refused")

    # --- invariants ------------------------------------------------------------------------

    @invariant()
    def the_store_agrees(self) -> None:
        if not self.all_families:
            return
        sids = [uuid.UUID(family.sid) for family in self.all_families]
        rows = {row["sid"]: row for row in self.world.run(self.world.db.fetch(_FAMILY_ROWS, sids))}
        access = {
            row["jti"]: row["revoked"]
            for row in self.world.run(self.world.db.fetch(_ACCESS_ROWS, sids))
        }
        for family in self.all_families:
            row = rows[family.sid]
            assert len(row["live"]) <= 1, f"{family.sid}: {len(row['live'])} live refresh tokens"
            assert row["refresh_tokens"] == len(family.refresh_tokens), family.sid
            assert row["revoked"] == (not family.alive), family.sid
            if family.alive:
                assert row["live"] == [family.current.token_hash], family.sid
            else:
                assert row["unrevoked"] == 0, f"{family.sid}: a refresh token outlived its family"
            for token in family.access_tokens:
                assert access[token.jti] == (not family.access_token_accepted(token)), token.jti

    @invariant()
    def the_guard_agrees(self) -> None:
        """The resource side's guard: signature, claims and the Redis revocation list."""
        for family in self.all_families:
            for token in family.access_tokens:
                accepted = self.world.run(self.world.guard_accepts(token.value))
                assert accepted == family.access_token_accepted(token), (family.sid, token.jti)

    @invariant()
    def introspection_agrees(self) -> None:
        """RFC 7662 on what the last step may have changed: the touched family's current
        and last used refresh token and its newest access token (a family's end checks
        every token of it)."""
        family, self.touched = self.touched, None
        if family is not None:
            self._introspect_all(family.refresh_tokens[-2:], family.access_tokens[-1:])

    # --- what the steps share --------------------------------------------------------------

    def _issue(self, scopes: frozenset[str], grant_type: str) -> FamilyModel:
        params = {"scope": " ".join(sorted(scopes))} if scopes else {}
        if grant_type == "password":
            response = self.world.run(password_grant(self.world.http, *self.world.client, **params))
        else:
            response = self.world.run(self.world.code_grant(params))
        assert response.status_code == 200, response.text
        body = response.json()
        granted = frozenset(body["scope"].split())
        assert granted == (scopes or DEFAULT_SCOPES), body
        sid = unverified_claims(body["access_token"])["sid"]
        family = FamilyModel(sid=sid, scopes=granted)
        self._record(family, body)
        self.all_families.append(family)
        self.touched = family
        self._saw(f"family issued ({grant_type})")
        return family

    def _rotate(
        self, family: FamilyModel, narrowed: frozenset[str] | None
    ) -> MultipleResults[RefreshTokenModel]:
        """A refresh with the family's current token: the token it used up, if any."""
        used = family.current
        params = {} if narrowed is None else {"scope": " ".join(sorted(narrowed))}
        response = self._refresh(used, **params)
        if not family.alive:
            self._expect_dead(family, response)
            return multiple()
        self._expect_rotated(family, response, narrowed or family.scopes)
        self._saw("refreshed" if narrowed is None else "narrowed")
        return multiple(used)

    def _expect_rotated(
        self, family: FamilyModel, response: httpx.Response, scopes: frozenset[str]
    ) -> None:
        assert family.alive, f"{family.sid} is dead, yet: {response.text}"
        assert response.status_code == 200, response.text
        body = response.json()
        issued = frozenset(body["scope"].split())
        assert issued == scopes, body
        assert issued <= family.scopes, f"scope widened: {issued} beyond {family.scopes}"
        claims = unverified_claims(body["access_token"])
        assert claims["sid"] == family.sid
        assert frozenset(claims["scope"].split()) == issued
        family.current.used = True
        family.current.in_window = True
        self._record(family, body)
        self.touched = family

    def _expect_dead(self, family: FamilyModel, response: httpx.Response) -> None:
        assert not family.alive
        _assert_refused(response, 400, "invalid_grant")
        self.touched = family
        self._saw("dead family refused")

    def _end(self, family: FamilyModel) -> None:
        """The family is gone: every refresh token of it, tried now, is refused, and
        introspection calls every token of it inactive."""
        family.alive = False
        for token in family.refresh_tokens:
            _assert_refused(self._refresh(token), 400, "invalid_grant")
        self._introspect_all(family.refresh_tokens, family.access_tokens)

    def _introspect_all(
        self, refresh_tokens: list[RefreshTokenModel], access_tokens: list[AccessTokenModel]
    ) -> None:
        for token in refresh_tokens:
            body = self._introspect(token.value)
            assert body["active"] == token.family.refresh_token_active(token), body
            if body["active"]:
                # Narrowing narrows an access token, never the family.
                assert set(body["scope"].split()) == token.family.scopes, body
        for access in access_tokens:
            body = self._introspect(access.value)
            assert body["active"] == access.family.access_token_accepted(access), body

    def _record(self, family: FamilyModel, body: dict[str, Any]) -> None:
        family.refresh_tokens.append(RefreshTokenModel(body["refresh_token"], family))
        jti = unverified_claims(body["access_token"])["jti"]
        family.access_tokens.append(AccessTokenModel(body["access_token"], jti, family))

    def _refresh(self, token: RefreshTokenModel, **params: str) -> httpx.Response:
        return self.world.run(
            refresh_grant(self.world.http, *self.world.client, token.value, **params)
        )

    def _revoke(self, token: str) -> None:
        response = self.world.post("/oauth/revoke", {"token": token}, self.world.client)
        assert response.status_code == 200, response.text
        assert response.content == b""

    def _introspect(self, token: str) -> dict[str, Any]:
        response = self.world.post("/oauth/introspect", {"token": token}, self.world.client)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def _saw(self, outcome: str) -> None:
        self.world.seen[outcome] += 1


async def _wait_for_marker(redis: aioredis.Redis, prefix: str) -> None:
    """The guard trusts the list only once the auth service has marked it whole."""
    deadline = time.monotonic() + 10
    while not await redis.exists(RevocationKeys(prefix).marker):
        assert time.monotonic() < deadline, "the revocation list was never marked whole"
        await asyncio.sleep(0.05)


async def test_refresh_families_keep_their_invariants(
    http: AsyncTestClient[Litestar],
    seed: Seed,
    settings: AuthSettings,
    redis_client: aioredis.Redis,
    redis_prefix: str,
) -> None:
    await seed.user()
    client_id, secret = await seed.client(
        grant_types=("authorization_code", "password", "refresh_token"),
        redirect_uris=(CALLBACK,),
        first_party=True,
    )
    other_id, other_secret = await seed.client(name="another client")
    assert secret is not None
    assert other_secret is not None
    jwks = (await http.get("/.well-known/jwks.json")).json()
    guard = PortcullisGuard(
        GuardConfig(issuer=ISSUER, audience="posts"),
        keys=StaticKeySource(jwks),
        revocations=RedisRevocationList(redis_client, redis_prefix),
    )
    await _wait_for_marker(redis_client, redis_prefix)
    assert (await sign_in(http)).status_code == 303
    db = await asyncpg.connect(settings.database.url.replace("postgresql+asyncpg", "postgresql"))
    try:
        world = World(
            loop=asyncio.get_running_loop(),
            http=http,
            db=db,
            guard=guard,
            client=(client_id, secret),
            other_client=(other_id, other_secret),
        )

        @hypothesis_seed(SEED)
        class Machine(RefreshFamilies):
            def __init__(self) -> None:
                super().__init__(world)

        await asyncio.to_thread(run_state_machine_as_test, Machine, settings=MACHINE_SETTINGS)
    finally:
        await db.close()

    assert set(world.seen) >= EVERY_OUTCOME, f"never happened: {EVERY_OUTCOME - set(world.seen)}"
