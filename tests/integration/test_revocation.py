"""Every kind of revocation reaches the posts service within a second, and never un-happens.

Both services run as real processes sharing Redis (the module's `stack`).
Each test revokes one way (a token, a grant, a user, a client, a logout, a
refresh-token reuse), then polls the posts service with the revoked token
and measures how long it still worked. The last tests empty the revocation
list in Redis (everything under this stack's prefix, as a FLUSHALL would)
and check that no revoked token is accepted while the auth service rebuilds it.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Iterable
from typing import Any

import asyncpg
import pytest
import redis
import requests

from tests.infrastructure import asyncpg_dsn
from tests.integration.processes import ClientCredentials
from tests.integration.stack import ADMIN, READ, Stack

WITHIN = 1.0
"""A revoked token is refused everywhere within 1 s (docs/architecture.md)."""
REBUILD_WITHIN = 3.0


# --- helpers ----------------------------------------------------------------------


def status(stack: Stack, token: str) -> requests.Response:
    return stack.posts_call("GET", "/api/posts", token)


def assert_works(stack: Stack, *tokens: str) -> None:
    for token in tokens:
        response = status(stack, token)
        assert response.status_code == 200, response.text


def assert_refused(response: requests.Response) -> None:
    assert response.status_code == 401, response.text
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


def refused_within(stack: Stack, tokens: Iterable[str], since: float, what: str) -> float:
    """Poll until every token is refused; the delay from `since`, which must be under 1 s.

    Until it is refused a token must still work: a 503 or anything else on
    the way is a failure too.
    """
    pending = list(tokens)
    delay = 0.0
    while pending:
        started = time.monotonic()
        if started - since >= WITHIN:
            pytest.fail(f"{what}: {len(pending)} token(s) still accepted {WITHIN} s after revoking")
        response = status(stack, pending[0])
        if response.status_code == 401:
            assert_refused(response)
            delay = time.monotonic() - since
            pending.pop(0)
            continue
        assert response.status_code == 200, f"{what}: {response.status_code} {response.text}"
        time.sleep(0.01)
    print(f"{what}: refused at the posts service after {delay * 1000:.0f} ms")
    return delay


def oauth(stack: Stack, path: str, client: ClientCredentials, **data: str) -> requests.Response:
    return requests.post(
        f"{stack.auth_url}{path}",
        data=data,
        auth=(client.client_id, client.client_secret),
        timeout=10,
    )


def refresh(stack: Stack, refresh_token: str) -> requests.Response:
    return oauth(
        stack,
        "/oauth/token",
        stack.password_client,
        grant_type="refresh_token",
        refresh_token=refresh_token,
    )


def refreshed(stack: Stack, refresh_token: str) -> dict[str, Any]:
    response = refresh(stack, refresh_token)
    assert response.status_code == 200, response.text
    return dict(response.json())


def assert_invalid_grant(response: requests.Response) -> None:
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_grant"


def next_second(after: float) -> None:
    """Sleep into the next whole second: user and client cutoffs are whole seconds."""
    while int(time.time()) <= int(after):
        time.sleep(0.05)


def new_user(stack: Stack, *, admin: bool = False) -> str:
    email = f"user-{secrets.token_hex(4)}@example.com"
    password = secrets.token_urlsafe(16)
    created = stack.cli.json(
        "user",
        "create",
        email,
        "--password-stdin",
        *(["--admin"] if admin else []),
        stdin=password + "\n",
    )
    assert created["email"] == email
    stack.passwords[email] = password
    return email


def new_machine_client(stack: Stack) -> ClientCredentials:
    created = stack.cli.json(
        "client", "create", f"machine-{secrets.token_hex(3)}", "--grant", "client_credentials",
        "--scope", READ,
    )  # fmt: skip
    return ClientCredentials(created["client_id"], created["client_secret"])


def revoke_with_cli(stack: Stack, *args: str, stdin: str | None = None) -> float:
    """Run a revoking `portcullis` command; the moment it returned (it lands before exiting)."""
    started = time.monotonic()
    stack.cli.run(*args, stdin=stdin)
    returned = time.monotonic()
    print(f"portcullis {' '.join(args)}: the process ran {(returned - started) * 1000:.0f} ms")
    return returned


# --- one test per kind of revocation --------------------------------------------


def test_revoking_an_access_token(stack: Stack) -> None:
    issued = stack.token("ada@example.com", READ)
    sibling = refreshed(stack, issued["refresh_token"])
    assert_works(stack, issued["access_token"], sibling["access_token"])

    response = oauth(stack, "/oauth/revoke", stack.password_client, token=issued["access_token"])
    revoked_at = time.monotonic()
    assert response.status_code == 200, response.text
    assert response.content == b""

    refused_within(stack, [issued["access_token"]], revoked_at, "token (RFC 7009, access token)")
    # Only that token: the family, and its other access token, live on.
    assert_works(stack, sibling["access_token"])
    assert refresh(stack, sibling["refresh_token"]).status_code == 200


def test_revoking_a_client_credentials_token(stack: Stack) -> None:
    token = stack.client_token(stack.machine_client, scope=READ)["access_token"]
    other = stack.client_token(stack.machine_client, scope=READ)["access_token"]
    assert_works(stack, token, other)
    response = oauth(stack, "/oauth/revoke", stack.machine_client, token=token)
    revoked_at = time.monotonic()
    assert response.status_code == 200, response.text
    refused_within(stack, [token], revoked_at, "token (RFC 7009, client credentials)")
    assert_works(stack, other)


def test_another_clients_token_is_not_revoked(stack: Stack) -> None:
    issued = stack.token("ada@example.com", READ)
    response = oauth(stack, "/oauth/revoke", stack.machine_client, token=issued["access_token"])
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "unauthorized_client"
    time.sleep(WITHIN)  # wall time: a revocation would have reached the posts service by now
    assert_works(stack, issued["access_token"])


def test_revoking_a_refresh_token_revokes_its_grant(stack: Stack) -> None:
    first = stack.token("ada@example.com", READ)
    second = refreshed(stack, first["refresh_token"])
    other_family = stack.token("ada@example.com", READ)
    assert_works(stack, first["access_token"], second["access_token"])

    response = oauth(stack, "/oauth/revoke", stack.password_client, token=second["refresh_token"])
    revoked_at = time.monotonic()
    assert response.status_code == 200, response.text

    refused_within(
        stack, [first["access_token"], second["access_token"]], revoked_at, "grant (RFC 7009)"
    )
    assert_invalid_grant(refresh(stack, second["refresh_token"]))
    assert_works(stack, other_family["access_token"])


def test_revoking_a_users_tokens(stack: Stack) -> None:
    ada = stack.token("ada@example.com", READ)
    ada_refreshed = refreshed(stack, ada["refresh_token"])
    bob = stack.token("bob@example.com", READ)
    assert_works(stack, ada["access_token"], ada_refreshed["access_token"])

    revoked_at = revoke_with_cli(stack, "user", "revoke-tokens", "ada@example.com")
    done = time.time()

    refused_within(
        stack,
        [ada["access_token"], ada_refreshed["access_token"]],
        revoked_at,
        "user (portcullis user revoke-tokens)",
    )
    assert_invalid_grant(refresh(stack, ada_refreshed["refresh_token"]))
    assert_works(stack, bob["access_token"])
    # A token issued after the revocation works (once past its whole-second cutoff).
    next_second(done)
    assert_works(stack, stack.token("ada@example.com", READ)["access_token"])


def test_a_new_password_revokes_the_users_tokens(stack: Stack) -> None:
    email = new_user(stack)
    old_password = stack.passwords[email]
    issued = stack.token(email, READ)
    assert_works(stack, issued["access_token"])

    new_password = secrets.token_urlsafe(16)
    revoked_at = revoke_with_cli(
        stack, "user", "set-password", email, "--password-stdin", stdin=new_password + "\n"
    )
    done = time.time()

    refused_within(
        stack, [issued["access_token"]], revoked_at, "user (portcullis user set-password)"
    )
    assert_invalid_grant(refresh(stack, issued["refresh_token"]))
    old = requests.post(
        f"{stack.auth_url}/oauth/token",
        data={"grant_type": "password", "username": email, "password": old_password},
        auth=(stack.password_client.client_id, stack.password_client.client_secret),
        timeout=10,
    )
    assert_invalid_grant(old)
    stack.passwords[email] = new_password
    next_second(done)
    assert_works(stack, stack.token(email, READ)["access_token"])


def test_disabling_a_user_revokes_their_tokens(stack: Stack) -> None:
    email = new_user(stack)
    issued = stack.token(email, READ)
    assert_works(stack, issued["access_token"])

    revoked_at = revoke_with_cli(stack, "user", "disable", email)

    refused_within(stack, [issued["access_token"]], revoked_at, "user (portcullis user disable)")
    assert_invalid_grant(refresh(stack, issued["refresh_token"]))
    login = requests.post(
        f"{stack.auth_url}/oauth/token",
        data={"grant_type": "password", "username": email, "password": stack.passwords[email]},
        auth=(stack.password_client.client_id, stack.password_client.client_secret),
        timeout=10,
    )
    assert_invalid_grant(login)


def test_removing_the_admin_role_revokes_the_users_tokens(stack: Stack) -> None:
    email = new_user(stack, admin=True)
    issued = stack.token(email, f"{READ} {ADMIN}")
    assert_works(stack, issued["access_token"])

    revoked_at = revoke_with_cli(stack, "user", "set-admin", email, "--no-admin")

    refused_within(
        stack, [issued["access_token"]], revoked_at, "user (portcullis user set-admin --no-admin)"
    )
    assert_invalid_grant(refresh(stack, issued["refresh_token"]))


def test_revoking_a_client(stack: Stack) -> None:
    client = new_machine_client(stack)
    tokens = [stack.client_token(client, scope=READ)["access_token"] for _ in range(2)]
    other = stack.client_token(stack.machine_client, scope=READ)["access_token"]
    assert_works(stack, *tokens)

    revoked_at = revoke_with_cli(stack, "client", "revoke", client.client_id)

    refused_within(stack, tokens, revoked_at, "client (portcullis client revoke)")
    again = oauth(stack, "/oauth/token", client, grant_type="client_credentials")
    assert again.status_code == 401, again.text
    assert again.json()["error"] == "invalid_client"
    assert_works(stack, other)


def test_logout(stack: Stack) -> None:
    first = stack.token("ada@example.com", READ)
    second = refreshed(stack, first["refresh_token"])
    other_session = stack.token("ada@example.com", READ)
    assert_works(stack, first["access_token"], second["access_token"])

    response = requests.post(
        f"{stack.auth_url}/oauth/logout",
        headers={"Authorization": f"Bearer {second['access_token']}"},
        timeout=10,
    )
    revoked_at = time.monotonic()
    assert response.status_code == 204, response.text

    refused_within(stack, [second["access_token"], first["access_token"]], revoked_at, "logout")
    assert_invalid_grant(refresh(stack, second["refresh_token"]))
    assert_works(stack, other_session["access_token"])


def test_refresh_token_reuse(stack: Stack) -> None:
    first = stack.token("ada@example.com", READ)
    second = refreshed(stack, first["refresh_token"])
    third = refreshed(stack, second["refresh_token"])
    tokens = [first["access_token"], second["access_token"], third["access_token"]]
    assert_works(stack, *tokens)

    reused = refresh(stack, first["refresh_token"])
    revoked_at = time.monotonic()
    assert_invalid_grant(reused)

    refused_within(stack, tokens, revoked_at, "refresh-token reuse")
    assert_invalid_grant(refresh(stack, third["refresh_token"]))


# --- the list lost and rebuilt ------------------------------------------------------


def revoked_of_every_kind(stack: Stack) -> dict[str, str]:
    """A revoked token of each kind: jti, sid, user, client; each checked refused."""
    by_token = stack.token("bob@example.com", READ)
    oauth(stack, "/oauth/revoke", stack.password_client, token=by_token["access_token"])
    by_grant = stack.token("bob@example.com", READ)
    oauth(stack, "/oauth/revoke", stack.password_client, token=by_grant["refresh_token"])
    email = new_user(stack)
    by_user = stack.token(email, READ)
    stack.cli.run("user", "revoke-tokens", email)
    client = new_machine_client(stack)
    by_client = stack.client_token(client, scope=READ)
    stack.cli.run("client", "revoke", client.client_id)
    revoked = {
        "jti": by_token["access_token"],
        "sid": by_grant["access_token"],
        "user": by_user["access_token"],
        "client": by_client["access_token"],
    }
    for token in revoked.values():
        assert_refused(status(stack, token))
    return revoked


def newest_revocation(stack: Stack) -> int:
    """The id of the newest revocation row in Postgres (0 with none)."""

    async def query() -> int:
        connection = await asyncpg.connect(asyncpg_dsn(stack.auth_database_url))
        try:
            return int(await connection.fetchval("SELECT coalesce(max(id), 0) FROM revocations"))
        finally:
            await connection.close()

    return asyncio.run(query())


def until_the_list_is_level(stack: Stack, within: float = 10.0) -> None:
    """Wait until the list's sequence in Redis reaches the newest revocation row: everything
    is pushed, and the auth service's sync has counted it so."""
    newest = newest_revocation(stack)
    client = redis.Redis.from_url(stack.redis_url)
    try:
        deadline = time.monotonic() + within
        while int(client.get(f"{stack.redis_prefix}revocations:sequence") or 0) < newest:
            assert time.monotonic() < deadline, f"the list was not level within {within} s"
            time.sleep(0.05)
    finally:
        client.close()


def delete_our_keys(stack: Stack) -> int:
    """Every key under the stack's prefix, in one DEL (atomic, as a FLUSHALL would be)."""
    client = redis.Redis.from_url(stack.redis_url)
    try:
        keys = list(client.scan_iter(match=f"{stack.redis_prefix}*", count=1000))
        assert f"{stack.redis_prefix}revocations:marker".encode() in keys
        return int(client.delete(*keys))
    finally:
        client.close()


def test_a_flushed_list_never_lets_a_revoked_token_through(stack: Stack) -> None:
    revoked = revoked_of_every_kind(stack)
    valid = stack.token("bob@example.com", READ)["access_token"]
    assert_works(stack, valid)

    deleted = delete_our_keys(stack)
    flushed_at = time.monotonic()

    seen: dict[str, dict[int, int]] = {kind: {} for kind in (*revoked, "valid")}
    valid_answers: list[tuple[float, int]] = []
    while time.monotonic() - flushed_at < REBUILD_WITHIN:
        for kind, token in revoked.items():
            response = status(stack, token)
            seen[kind][response.status_code] = seen[kind].get(response.status_code, 0) + 1
            assert response.status_code != 200, f"the {kind}-revoked token was accepted"
            assert response.status_code in (401, 503), response.text
            if response.status_code == 503:
                assert response.headers["Retry-After"]
        response = status(stack, valid)
        seen["valid"][response.status_code] = seen["valid"].get(response.status_code, 0) + 1
        # Fail closed while the list is incomplete: 503, never "revoked".
        assert response.status_code in (200, 503), response.text
        valid_answers.append((time.monotonic() - flushed_at, response.status_code))
    print(f"deleted {deleted} keys; polled for {REBUILD_WITHIN} s: {seen}")
    # A valid token keeps working (its service's filter, which lost nothing, clears it)
    # until the service notices the marker is gone, is refused (503) until the list is
    # rebuilt, then works for good.
    phases = [
        (at, code)
        for n, (at, code) in enumerate(valid_answers)
        if n == 0 or code != valid_answers[n - 1][1]
    ]
    assert [code for _, code in phases] in ([200], [503, 200], [200, 503, 200]), phases
    if len(phases) > 1:
        print(f"after the flush a valid token worked again after {phases[-1][0] * 1000:.0f} ms")
    for token in revoked.values():
        assert_refused(status(stack, token))


def test_revocations_sync_reports_ok_and_rebuilds_on_request(stack: Stack) -> None:
    revoked = revoked_of_every_kind(stack)
    valid = stack.token("bob@example.com", READ)["access_token"]
    until_the_list_is_level(stack)  # by the auth service's own once-a-second check

    assert stack.cli.run("revocations", "sync").stdout.strip() == "revocation list: ok"

    rebuilt = stack.cli.run("revocations", "sync", "--rebuild")
    assert rebuilt.stdout.strip() == "revocation list: rebuilt"
    for token in revoked.values():
        assert_refused(status(stack, token))
    assert_works(stack, valid)

    # Emptied, then synced by hand: whichever of the CLI and the service gets there first
    # rebuilds it, and the CLI finds it either to rebuild or already whole.
    delete_our_keys(stack)
    synced = stack.cli.run("revocations", "sync").stdout.strip()
    assert synced in {"revocation list: rebuilt", "revocation list: ok"}, synced
    for token in revoked.values():
        assert_refused(status(stack, token))
    assert_works(stack, valid)
