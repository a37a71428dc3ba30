"""Sign-in sessions end when the user's trust is lowered: a new password, the admin role
taken away, disabled, or every token revoked."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from urllib.parse import parse_qs, urlsplit

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy.ext.asyncio import AsyncSession

from portcullis_auth.oauth2.pkce import challenge_of
from portcullis_auth.security.passwords import PasswordHasher
from portcullis_auth.services.revocations import RevocationService
from portcullis_auth.services.users import UserService
from portcullis_auth.settings import AuthSettings
from tests.auth.conftest import Seed
from tests.auth.helpers import (
    USER_EMAIL,
    assert_oauth_error,
    csrf_of,
    hidden_fields,
    query,
    sign_in,
)

Http = AsyncTestClient[Litestar]
CALLBACK = "https://app.example/callback"
LoweringTrust = Callable[[UserService, RevocationService], Awaitable[None]]

LOWERING_TRUST: dict[str, LoweringTrust] = {
    "new-password": lambda users, revocations: users.set_password(
        USER_EMAIL, "a brand new passphrase", revocations
    ),
    "admin-removed": lambda users, revocations: users.set_admin(USER_EMAIL, False, revocations),
    "disabled": lambda users, revocations: users.disable(USER_EMAIL, revocations),
    "tokens-revoked": lambda users, revocations: users.revoke_tokens(USER_EMAIL, revocations),
}


async def lower_trust(seed: Seed, change: LoweringTrust) -> None:
    async def work(session: AsyncSession) -> None:
        revocations = RevocationService(session, seed.settings.tokens)
        await change(UserService(session, PasswordHasher()), revocations)

    await seed.run(work)


async def sessions_of(settings: AuthSettings, user_id: str) -> int:
    rows = await query(
        settings, "SELECT count(*) AS n FROM sign_in_sessions WHERE user_id = :id", id=user_id
    )
    return int(rows[0]["n"])


def authorization(client_id: str) -> dict[str, str]:
    return {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": CALLBACK,
        "scope": "read-posts",
        "state": "s",
        "code_challenge": challenge_of("v" * 43),
        "code_challenge_method": "S256",
    }


@pytest.mark.parametrize("change", LOWERING_TRUST.values(), ids=LOWERING_TRUST.keys())
async def test_lowering_a_users_trust_ends_their_sign_in_sessions(
    http: Http, seed: Seed, change: LoweringTrust
) -> None:
    user_id = await seed.user(USER_EMAIL, admin=True)
    own_app, _ = await seed.client(
        name="Our own app",
        grant_types=("authorization_code",),
        redirect_uris=(CALLBACK,),
        first_party=True,
    )
    assert (await sign_in(http)).status_code == 303
    before = await http.get(
        "/oauth/authorize", params=authorization(own_app), follow_redirects=False
    )
    assert before.status_code == 303
    assert before.headers["location"].startswith(CALLBACK)  # a code, no question asked

    await lower_trust(seed, change)

    assert await sessions_of(seed.settings, user_id) == 0
    home = await http.get("/account/applications", follow_redirects=False)
    assert home.status_code == 303
    assert urlsplit(home.headers["location"]).path == "/sign-in"
    after = await http.get(
        "/oauth/authorize", params=authorization(own_app), follow_redirects=False
    )
    assert after.status_code == 303
    assert urlsplit(after.headers["location"]).path == "/sign-in"
    assert "code" not in parse_qs(urlsplit(after.headers["location"]).query)


async def test_granting_the_admin_role_leaves_sign_in_sessions_alone(
    http: Http, seed: Seed
) -> None:
    user_id = await seed.user(USER_EMAIL)
    assert (await sign_in(http)).status_code == 303
    await lower_trust(
        seed, lambda users, revocations: users.set_admin(USER_EMAIL, True, revocations)
    )
    assert await sessions_of(seed.settings, user_id) == 1
    assert (await http.get("/account/applications")).status_code == 200


async def test_a_session_from_before_the_users_revocation_cutoff_is_refused(
    http: Http, seed: Seed
) -> None:
    """Should a session outlive a trust change (a sign-in racing it, say), the user's
    revocation cutoff still covers it: it was made at or before that second."""
    user_id = await seed.user(USER_EMAIL)
    assert (await sign_in(http)).status_code == 303

    async def cutoff_only(session: AsyncSession) -> None:
        revocations = RevocationService(session, seed.settings.tokens)
        await revocations.revoke_user(uuid.UUID(user_id), reason="test")

    await seed.run(cutoff_only)
    assert await sessions_of(seed.settings, user_id) == 1  # the row is still there
    home = await http.get("/account/applications", follow_redirects=False)
    assert home.status_code == 303
    assert urlsplit(home.headers["location"]).path == "/sign-in"


DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"


@pytest.mark.parametrize("change", LOWERING_TRUST.values(), ids=LOWERING_TRUST.keys())
async def test_what_a_session_approved_before_lowering_trust_issues_nothing_after(
    http: Http, seed: Seed, change: LoweringTrust
) -> None:
    """A code handed out and a device approved a moment before the change (by a stolen
    session, say) would otherwise start a token family after the user's cutoff."""
    await seed.user(USER_EMAIL, admin=True)
    own_app, secret = await seed.client(
        name="Our own app",
        grant_types=("authorization_code",),
        redirect_uris=(CALLBACK,),
        first_party=True,
    )
    assert secret is not None
    tv, _ = await seed.client(
        name="TV app", grant_types=(DEVICE_GRANT,), public=True, first_party=True
    )
    assert (await sign_in(http)).status_code == 303
    answer = await http.get(
        "/oauth/authorize", params=authorization(own_app), follow_redirects=False
    )
    code = parse_qs(urlsplit(answer.headers["location"]).query)["code"][0]
    started = await http.post("/oauth/device/code", data={"client_id": tv, "scope": "read-posts"})
    device = started.json()
    page = await http.get("/oauth/device")
    confirm = await http.post(
        "/oauth/device", data={"csrf_token": csrf_of(page), "user_code": device["user_code"]}
    )
    approved = await http.post(
        "/oauth/device/answer", data={**hidden_fields(confirm), "decision": "approve"}
    )
    assert approved.status_code == 200, approved.text

    await lower_trust(seed, change)

    redeemed = await http.post(
        "/oauth/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": CALLBACK,
            "code_verifier": "v" * 43,
        },
        auth=(own_app, secret),
    )
    assert_oauth_error(redeemed, 400, "invalid_grant")
    polled = await http.post(
        "/oauth/token",
        data={"grant_type": DEVICE_GRANT, "device_code": device["device_code"], "client_id": tv},
    )
    assert polled.status_code == 400, polled.text
    assert polled.json()["error"] in {"access_denied", "invalid_grant", "expired_token"}
