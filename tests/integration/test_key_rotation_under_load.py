"""Signing-key rotation under a steady load, between real processes: zero failed requests.

`portcullis keys rotate` publishes a new key before it signs (50 s, by when
every auth process has read it, and then as long as a JWKS cache may keep the
keys: the max-age, 30 s at least), and the old key leaves the JWKS once the
longest-lived token it can have signed has expired (the personal-access-token
maximum and the leeway after the new key took over). This module sets both as
short as the settings allow: a JWKS max-age of 30 s, access tokens of 10 s,
personal access tokens of at most 60 s, no leeway. The rotation still takes
80 + 60 s: that is the product's floor, not the test's choice.

All the while, clients ask the auth service for tokens (client credentials,
password, refresh) and use them at the posts service, one of them holding
each token until it expires and one holding a personal access token signed by
the old key until it expires. Every answer must be the expected one.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import json
import re
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from tests.integration.stack import READ, WRITE, Stack

JWKS_MAX_AGE = 30
"""The least time a JWKS cache keeps the keys, whatever the max-age says."""
ACCESS_TOKEN_TTL = 10
PAT_MAX_TTL = 60
"""The longest any token lives, so the old key is retired this long after the new
one took over (leeway 0)."""
ACTIVATE_IN = 50 + JWKS_MAX_AGE
"""The least `keys rotate --activate-in` accepts."""
BEFORE_ROTATION = 3.0
AFTER_RETIREMENT = 3.0
RETIRED_WITHIN = 5.0
"""The old kid leaves the JWKS this soon after its retirement time (the JWKS
document is cached 1 s by each auth process)."""
MACHINE_CALLERS = 3
USER_CALLERS = 2
PASSWORD_EVERY = 10
"""A user caller signs in with its password every this many rounds, refreshes otherwise."""
LEAST_REQUESTS_PER_PHASE = 30
LEAST_REQUESTS = 1000


@pytest.fixture(scope="module")
def auth_settings() -> dict[str, str]:
    return {
        "PORTCULLIS_JWKS_MAX_AGE": str(JWKS_MAX_AGE),
        "PORTCULLIS_ACCESS_TOKEN_TTL": str(ACCESS_TOKEN_TTL),
        "PORTCULLIS_PAT_TTL": str(PAT_MAX_TTL),
        "PORTCULLIS_PAT_MAX_TTL": str(PAT_MAX_TTL),
        "PORTCULLIS_LEEWAY": "0",
        # Every caller is one address, asking for tokens as fast as it can: a load no
        # real client makes, so budgets a real client never meets would refuse it.
        "PORTCULLIS_RATE_LIMITS": "off",
    }


@pytest.fixture(scope="module")
def posts_settings() -> dict[str, str]:
    return {"PORTCULLIS_LEEWAY": "0"}


# --- tokens -----------------------------------------------------------------------


def _segment(token: str, index: int) -> dict[str, Any]:
    part = token.split(".")[index]
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return decoded


def kid_of(token: str) -> str:
    kid: str = _segment(token, 0)["kid"]
    return kid


def claims_of(token: str) -> dict[str, Any]:
    return _segment(token, 1)


# --- the load ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Outcome:
    """One request of the load and its answer."""

    caller: str
    what: str
    expected: int
    status: int | None
    """None: no answer at all."""
    kid: str | None
    """The kid of the token issued (token requests) or presented (API calls)."""
    sent_at: float
    answered_at: float
    detail: str = ""

    @property
    def failed(self) -> bool:
        return self.status != self.expected

    @property
    def is_token_request(self) -> bool:
        return self.what.startswith("token ")


class RequestFailedError(Exception):
    """A request of the load did not get its expected answer (already recorded)."""


@dataclass
class Load:
    """Callers that ask for tokens and use them until told to stop, recording every answer."""

    stack: Stack
    client: httpx.AsyncClient
    outcomes: list[Outcome] = field(default_factory=list)
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    jwks_answers: list[tuple[float, frozenset[str]]] = field(default_factory=list)
    """When each JWKS answer came, and the kids it published."""

    def start(self, name: str, caller: Callable[[str], Coroutine[Any, Any, None]]) -> None:
        self.tasks.append(asyncio.create_task(self._until_stopped(name, caller), name=name))

    def start_once(self, name: str, work: Coroutine[Any, Any, None]) -> None:
        self.tasks.append(asyncio.create_task(self._once(work), name=name))

    async def _once(self, work: Coroutine[Any, Any, None]) -> None:
        with contextlib.suppress(RequestFailedError):
            await work

    async def _until_stopped(
        self, name: str, caller: Callable[[str], Coroutine[Any, Any, None]]
    ) -> None:
        """Run `caller` again after each request it could not go on from, until stopped."""
        while not self.stopping.is_set():
            try:
                await caller(name)
            except RequestFailedError:
                await asyncio.sleep(0.1)

    async def stop(self) -> None:
        self.stopping.set()
        await asyncio.gather(*self.tasks)

    async def cancel(self) -> None:
        """Stop every caller at once (the test failed on its way)."""
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)

    async def request(
        self,
        caller: str,
        what: str,
        expected: int,
        method: str,
        url: str,
        *,
        kid: str | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        sent_at = time.time()
        try:
            response = await self.client.request(method, url, **kwargs)
        except httpx.HTTPError as exc:
            self.outcomes.append(
                Outcome(caller, what, expected, None, kid, sent_at, time.time(), repr(exc))
            )
            raise RequestFailedError from exc
        answered_at = time.time()
        if response.status_code == expected and what.startswith("token "):
            kid = kid_of(response.json()["access_token"])
        detail = "" if response.status_code == expected else _describe(response)
        self.outcomes.append(
            Outcome(caller, what, expected, response.status_code, kid, sent_at, answered_at, detail)
        )
        if response.status_code != expected:
            raise RequestFailedError
        return response

    async def token(
        self, caller: str, grant: str, data: dict[str, str], auth: tuple[str, str]
    ) -> dict[str, Any]:
        response = await self.request(
            caller,
            f"token {grant}",
            200,
            "POST",
            f"{self.stack.auth_url}/oauth/token",
            data={"grant_type": grant, **data},
            auth=auth,
        )
        answer: dict[str, Any] = response.json()
        return answer

    async def api(
        self, caller: str, method: str, path: str, token: str, expected: int, **kwargs: Any
    ) -> httpx.Response:
        route = re.sub(r"/[0-9a-f-]{36}", "/{id}", path.split("?", maxsplit=1)[0])
        return await self.request(
            caller,
            f"{method} {route}",
            expected,
            method,
            f"{self.stack.posts_url}{path}",
            kid=kid_of(token),
            headers={"Authorization": f"Bearer {token}"},
            **kwargs,
        )

    def _machine_auth(self) -> tuple[str, str]:
        machine = self.stack.machine_client
        return machine.client_id, machine.client_secret

    def _password_auth(self) -> tuple[str, str]:
        client = self.stack.password_client
        return client.client_id, client.client_secret

    async def machine_caller(self, name: str) -> None:
        """A fresh client-credentials token, then a few reads with it."""
        while not self.stopping.is_set():
            grant = "client_credentials"
            answer = await self.token(name, grant, {"scope": READ}, self._machine_auth())
            token = answer["access_token"]
            for _ in range(4):
                await self.api(name, "GET", "/api/posts?limit=5", token, 200)

    async def user_caller(self, name: str, email: str) -> None:
        """A user who signs in, then refreshes round after round, writing and reading a post
        with each new access token."""
        password = {
            "username": email,
            "password": self.stack.passwords[email],
            "scope": f"{READ} {WRITE}",
        }
        rounds = 0
        refresh_token = ""
        while not self.stopping.is_set():
            if rounds % PASSWORD_EVERY == 0:
                answer = await self.token(name, "password", password, self._password_auth())
            else:
                refresh = {"refresh_token": refresh_token}
                answer = await self.token(name, "refresh_token", refresh, self._password_auth())
            rounds += 1
            token, refresh_token = answer["access_token"], answer["refresh_token"]
            body = {"title": f"{name} {rounds}", "body": "written during a key rotation"}
            created = await self.api(name, "POST", "/api/posts", token, 201, json=body)
            post_id = created.json()["id"]
            await self.api(name, "GET", f"/api/posts/{post_id}", token, 200)
            await self.api(name, "GET", "/api/posts?limit=5", token, 200)

    async def holding_caller(self, name: str) -> None:
        """Keeps each client-credentials token until just before it expires, so tokens of
        the old key are still presented after the new key has begun to sign."""
        while not self.stopping.is_set():
            grant = "client_credentials"
            answer = await self.token(name, grant, {"scope": READ}, self._machine_auth())
            token = answer["access_token"]
            await self.hold(name, token)

    async def hold(self, name: str, token: str) -> None:
        """Present `token` four times a second until a second before it expires."""
        expires = claims_of(token)["exp"]
        while not self.stopping.is_set() and time.time() < expires - 1:
            await self.api(name, "GET", "/api/posts?limit=1", token, 200)
            await asyncio.sleep(0.25)

    def start_callers(self) -> None:
        for index in range(MACHINE_CALLERS):
            self.start(f"machine-{index}", self.machine_caller)
        for index, email in enumerate(("ada@example.com", "bob@example.com")[:USER_CALLERS]):
            self.start(f"user-{index}", functools.partial(self.user_caller, email=email))
        self.start("holding", self.holding_caller)


def _describe(response: httpx.Response) -> str:
    challenge = response.headers.get("www-authenticate", "")
    return f"{challenge} {response.text[:300]}".strip()


@contextlib.asynccontextmanager
async def running(load: Load) -> AsyncIterator[Load]:
    try:
        yield load
    finally:
        await load.cancel()


# --- the rotation -----------------------------------------------------------------


async def published_kids(load: Load) -> set[str]:
    response = await load.request(
        "operator", "GET jwks", 200, "GET", f"{load.stack.auth_url}/.well-known/jwks.json"
    )
    kids = frozenset(key["kid"] for key in response.json()["keys"])
    load.jwks_answers.append((time.time(), kids))
    return set(kids)


async def wait_for_kids(
    load: Load, wanted: Callable[[set[str]], bool], until: float, what: str
) -> float:
    """Poll the JWKS until `wanted` holds; the time it first held, which must be before `until`."""
    while time.time() < until:
        if wanted(await published_kids(load)):
            return load.jwks_answers[-1][0]
        await asyncio.sleep(0.25)
    pytest.fail(f"{what}: not seen by {datetime.fromtimestamp(until, UTC).isoformat()}")


async def sleep_until(moment: float) -> None:
    await asyncio.sleep(max(0.0, moment - time.time()))


async def rotate(stack: Stack) -> tuple[str, float]:
    """`portcullis keys rotate`, run as an operator would, beside the running services."""
    completed = await asyncio.to_thread(
        stack.cli.run, "keys", "rotate", "--activate-in", str(ACTIVATE_IN)
    )
    found = re.fullmatch(r"created signing key (\S+); it signs from (\S+)\n", completed.stdout)
    assert found is not None, completed.stdout
    return found.group(1), datetime.fromisoformat(found.group(2)).timestamp()


async def personal_access_token(load: Load) -> str:
    """A personal access token of the longest lifetime, minted with a user's token."""
    client = load.stack.password_client
    login = await load.token(
        "operator",
        "password",
        {
            "username": "admin@example.com",
            "password": load.stack.passwords["admin@example.com"],
            "scope": READ,
        },
        (client.client_id, client.client_secret),
    )
    created = await load.request(
        "operator",
        "POST personal-access-tokens",
        201,
        "POST",
        f"{load.stack.auth_url}/oauth/personal-access-tokens",
        json={"name": "rotation", "scopes": [READ], "expires_in": PAT_MAX_TTL},
        headers={"Authorization": f"Bearer {login['access_token']}"},
    )
    token: str = created.json()["access_token"]
    return token


def key_states(stack: Stack) -> dict[str, str]:
    """`portcullis keys list`: kid -> state."""
    lines = stack.cli.run("keys", "list").stdout.splitlines()
    return {line.split()[0]: line.split()[2] for line in lines if line.strip()}


@dataclass(frozen=True, slots=True)
class Timeline:
    rotated_at: float
    activates_at: float
    retired_at: float

    def phase(self, moment: float) -> str:
        if moment < self.rotated_at:
            return "before rotation"
        if moment < self.activates_at:
            return "new key published"
        if moment < self.retired_at:
            return "both keys published"
        return "old key retired"


async def test_rotation_under_load_fails_no_request(stack: Stack) -> None:
    async with httpx.AsyncClient(timeout=10.0) as client, running(Load(stack, client)) as load:
        (old_kid,) = await published_kids(load)
        load.start_callers()
        await asyncio.sleep(BEFORE_ROTATION)

        rotated_at = time.time()
        new_kid, activates_at = await rotate(stack)
        assert new_kid != old_kid
        assert activates_at >= rotated_at + ACTIVATE_IN
        published_at = await wait_for_kids(
            load, lambda kids: kids == {old_kid, new_kid}, activates_at, "new key published"
        )

        await sleep_until(activates_at - 5)
        pat = await personal_access_token(load)
        load.start_once("pat", load.hold("pat", pat))

        retired_at = await wait_for_kids(
            load,
            lambda kids: kids == {new_kid},
            activates_at + PAT_MAX_TTL + RETIRED_WITHIN,
            "old key retired",
        )
        await asyncio.sleep(AFTER_RETIREMENT)
        await load.stop()

        after = await client.get(
            f"{stack.posts_url}/api/posts?limit=1", headers={"Authorization": f"Bearer {pat}"}
        )

    timeline = Timeline(rotated_at, activates_at, retired_at)
    outcomes = load.outcomes

    failed = [outcome for outcome in outcomes if outcome.failed]
    kinds = Counter((o.what, o.status, timeline.phase(o.sent_at)) for o in failed)
    assert not failed, f"{len(failed)} of {len(outcomes)} failed: {kinds}; first: {failed[:3]}"

    per_phase = Counter(
        timeline.phase(outcome.sent_at) for outcome in outcomes if outcome.caller != "operator"
    )
    assert sum(per_phase.values()) >= LEAST_REQUESTS, per_phase
    assert len(per_phase) == 4, per_phase
    assert min(per_phase.values()) >= LEAST_REQUESTS_PER_PHASE, per_phase

    # The new key is published before it signs, and signs from its activation on.
    assert published_at < activates_at
    issued = [outcome for outcome in outcomes if outcome.is_token_request]
    assert {o.kid for o in issued if o.answered_at < activates_at} == {old_kid}
    assert {o.kid for o in issued if o.sent_at >= activates_at} == {new_kid}
    assert {o.kid for o in issued} == {old_kid, new_kid}

    # The posts service accepted tokens of both keys, the old key's also after the new
    # one took over, and the new key's from the first.
    api_calls = [o for o in outcomes if not o.is_token_request and o.caller != "operator"]
    accepted = Counter((o.kid, timeline.phase(o.sent_at)) for o in api_calls)
    assert accepted[old_kid, "both keys published"] > 0, accepted
    assert accepted[new_kid, "both keys published"] > 0, accepted
    assert accepted[new_kid, "old key retired"] > 0, accepted
    first_new = min(o.sent_at for o in issued if o.kid == new_kid)
    assert any(o.kid == new_kid and o.sent_at < first_new + 1 for o in api_calls)

    # The longest-lived token the old key signed lived past the overlap's start, was
    # accepted until it expired, and had expired when the old key was retired.
    assert kid_of(pat) == old_kid
    pat_expires = claims_of(pat)["exp"]
    assert pat_expires > activates_at + PAT_MAX_TTL - 10
    assert pat_expires <= retired_at
    pat_calls = [o for o in outcomes if o.caller == "pat"]
    assert max(o.sent_at for o in pat_calls) >= pat_expires - 2, "the token was not held"
    assert after.status_code == 401, after.text
    assert 'error="invalid_token"' in after.headers["www-authenticate"]

    # The JWKS, watched from before the new key signed, kept the old key until the
    # longest token it can have signed had expired, and the new one from its publication.
    assert retired_at >= activates_at + PAT_MAX_TTL
    both = frozenset({old_kid, new_kid})
    assert all(kids == both for at, kids in load.jwks_answers if published_at <= at < retired_at), (
        load.jwks_answers
    )
    assert all(kids == {old_kid} for at, kids in load.jwks_answers if at < published_at)
    assert all(kids == {new_kid} for at, kids in load.jwks_answers if at >= retired_at)
    assert key_states(stack) == {old_kid: "retired", new_kid: "signing"}
