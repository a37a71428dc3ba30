"""The device verification pages (RFC 8628 §3.3), in process: guessing user codes, and what
an answer is checked against before it is kept."""

from __future__ import annotations

import httpx
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from tests.auth.conftest import Seed
from tests.auth.helpers import USER_EMAIL, csrf_of, execute, hidden_fields, query, sign_in

Http = AsyncTestClient[Litestar]
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
WRONG_CODE = "BCDF-GHJK"  # well formed; no device shows it


async def device_client(seed: Seed) -> str:
    client_id, _ = await seed.client(
        name="TV app", grant_types=(DEVICE_GRANT,), scopes=("read-posts", "admin"), public=True
    )
    return client_id


async def start_device(http: Http, client_id: str, scope: str = "read-posts") -> dict[str, str]:
    started = await http.post("/oauth/device/code", data={"client_id": client_id, "scope": scope})
    assert started.status_code == 200, started.text
    return dict(started.json())


async def type_code(http: Http, code: str) -> httpx.Response:
    """The code page, then the code typed into it."""
    page = await http.get("/oauth/device")
    return await http.post("/oauth/device", data={"csrf_token": csrf_of(page), "user_code": code})


async def device_status(seed: Seed, device_code_user_code: str) -> str:
    rows = await query(
        seed.settings,
        "SELECT status FROM device_authorizations WHERE user_code = :code",
        code=device_code_user_code.replace("-", ""),
    )
    return str(rows[0]["status"])


def assert_framed_nowhere(page: httpx.Response) -> None:
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY"


# --- guessing codes (§5.1) ----------------------------------------------------------------


async def test_a_right_code_does_not_wipe_the_count_of_wrong_ones(http: Http, seed: Seed) -> None:
    """Otherwise a guesser interleaves the code of a device flow of their own and guesses on
    for ever."""
    await seed.user(USER_EMAIL)
    tv = await device_client(seed)
    assert (await sign_in(http)).status_code == 303
    own = await start_device(http, tv)
    answers = [(await type_code(http, WRONG_CODE)).status_code for _ in range(4)]
    answers.append((await type_code(http, own["user_code"])).status_code)
    answers += [(await type_code(http, WRONG_CODE)).status_code for _ in range(2)]
    assert answers == [400, 400, 400, 400, 200, 400, 429]


@pytest.mark.parametrize("settings_overrides", [{"login_max_failures_per_ip": "3"}])
async def test_code_guesses_and_password_logins_count_apart(http: Http, seed: Seed) -> None:
    await seed.user(USER_EMAIL)
    assert (await sign_in(http)).status_code == 303
    answers = [(await type_code(http, WRONG_CODE)).status_code for _ in range(4)]
    assert answers == [400, 400, 400, 429]  # the address's own limit for codes
    assert (await sign_in(http)).status_code == 303  # its password budget is untouched


# --- answering ----------------------------------------------------------------------------


async def test_a_user_cannot_approve_a_scope_their_account_does_not_hold(
    http: Http, seed: Seed
) -> None:
    await seed.user(USER_EMAIL)  # not an admin
    tv = await device_client(seed)
    started = await start_device(http, tv, scope="admin")
    assert (await sign_in(http)).status_code == 303
    confirm = await type_code(http, started["user_code"])
    assert confirm.status_code == 200
    assert 'value="approve"' not in confirm.text  # no Allow button is offered...
    forged = await http.post(  # ...and one added by hand does not pass either
        "/oauth/device/answer", data={**hidden_fields(confirm), "decision": "approve"}
    )
    assert forged.status_code == 403, forged.text
    assert_framed_nowhere(forged)
    assert await device_status(seed, started["user_code"]) == "pending"


async def test_an_expired_request_cannot_be_approved(http: Http, seed: Seed) -> None:
    await seed.user(USER_EMAIL)
    tv = await device_client(seed)
    started = await start_device(http, tv)
    assert (await sign_in(http)).status_code == 303
    confirm = await type_code(http, started["user_code"])
    assert confirm.status_code == 200
    await execute(
        seed.settings,
        "UPDATE device_authorizations SET expires_at = now() - interval '1 second'",
    )
    late = await http.post(
        "/oauth/device/answer", data={**hidden_fields(confirm), "decision": "approve"}
    )
    assert late.status_code == 400, late.text
    assert await device_status(seed, started["user_code"]) == "pending"


@pytest.mark.parametrize("csrf", [None, "forged"], ids=["missing", "wrong"])
async def test_an_answer_without_its_csrf_token_is_refused(
    http: Http, seed: Seed, csrf: str | None
) -> None:
    await seed.user(USER_EMAIL)
    tv = await device_client(seed)
    started = await start_device(http, tv)
    assert (await sign_in(http)).status_code == 303
    confirm = await type_code(http, started["user_code"])
    form = {**hidden_fields(confirm), "decision": "approve"}
    del form["csrf_token"]
    if csrf is not None:
        form["csrf_token"] = csrf
    refused = await http.post("/oauth/device/answer", data=form)
    assert refused.status_code == 403
    assert_framed_nowhere(refused)
    assert await device_status(seed, started["user_code"]) == "pending"
