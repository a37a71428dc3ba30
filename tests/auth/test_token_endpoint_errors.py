"""docs/security.md, the token endpoint's errors (RFC 6749 §2.3.1, §3.2, §5.1, §5.2) and the
discovery and health routes.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from litestar.types import HTTPDisconnectEvent, HTTPRequestEvent, Message
from sqlalchemy.ext.asyncio import AsyncSession

from portcullis_auth.http.app import create_app
from portcullis_auth.keys.sealing import KeySealer
from portcullis_auth.keys.service import SigningKeyService
from portcullis_auth.settings import AuthSettings
from tests.auth.conftest import ISSUER, USER_PASSWORD, Seed, basic_auth
from tests.auth.helpers import (
    TOKEN_URL,
    USER_EMAIL,
    assert_oauth_error,
    client_credentials_grant,
    execute,
    password_grant,
    refresh_grant,
)

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
PRIVATE_JWK_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}


@pytest.fixture
async def client(seed: Seed) -> tuple[str, str]:
    client_id, secret = await seed.client()
    assert secret is not None
    return client_id, secret


def _percent_encode_all(value: str) -> str:
    """Form-urlencoding may escape any character; a conforming server must decode it."""
    return "".join(f"%{byte:02X}" for byte in value.encode())


def _raw_basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


# --- invalid_request -------------------------------------------------------------------------


async def test_missing_grant_type_is_invalid_request(
    http: AsyncTestClient[Litestar], client: tuple[str, str]
) -> None:
    response = await http.post(TOKEN_URL, data={"scope": "read-posts"}, headers=basic_auth(*client))

    assert_oauth_error(response, 400, "invalid_request")


async def test_parameter_given_twice_is_invalid_request(
    http: AsyncTestClient[Litestar], client: tuple[str, str]
) -> None:
    response = await http.post(
        TOKEN_URL,
        content=b"grant_type=client_credentials&scope=read-posts&scope=admin",
        headers={**basic_auth(*client), **FORM},
    )

    assert_oauth_error(response, 400, "invalid_request")


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        pytest.param(b'{"grant_type": "client_credentials"}', "application/json", id="json"),
        pytest.param(b"", "application/x-www-form-urlencoded", id="empty"),
        pytest.param(
            b"grant_type=client_credentials&scope=read-posts\xff\xfe",
            "application/x-www-form-urlencoded",
            id="not-utf8",
        ),
        pytest.param(
            b'--b\r\nContent-Disposition: form-data; name="grant_type"\r\n\r\n'
            b"client_credentials\r\n--b--\r\n",
            "multipart/form-data; boundary=b",
            id="multipart",
        ),
        pytest.param(b"grant_type=client_credentials", None, id="no-content-type"),
        pytest.param(
            b"&".join(b"p%d=x" % index for index in range(100)) + b"&grant_type=client_credentials",
            "application/x-www-form-urlencoded",
            id="too-many-fields",
        ),
    ],
)
async def test_malformed_body_is_invalid_request(
    http: AsyncTestClient[Litestar],
    client: tuple[str, str],
    content: bytes,
    content_type: str | None,
) -> None:
    headers = basic_auth(*client)
    if content_type is not None:
        headers["Content-Type"] = content_type

    response = await http.post(TOKEN_URL, content=content, headers=headers)

    assert_oauth_error(response, 400, "invalid_request")


async def test_multipart_form_built_by_the_http_client_is_invalid_request(
    http: AsyncTestClient[Litestar], client: tuple[str, str]
) -> None:
    response = await http.post(
        TOKEN_URL,
        files={"grant_type": (None, "client_credentials")},
        headers=basic_auth(*client),
    )

    assert_oauth_error(response, 400, "invalid_request")


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH"])
async def test_token_endpoint_answers_other_methods_with_405_json(
    http: AsyncTestClient[Litestar], method: str
) -> None:
    response = await http.request(method, TOKEN_URL)

    assert_oauth_error(response, 405, "invalid_request")
    assert response.headers["allow"] == "POST"


async def test_huge_body_is_413_json_never_500(
    http: AsyncTestClient[Litestar], client: tuple[str, str]
) -> None:
    response = await http.post(
        TOKEN_URL,
        content=b"grant_type=client_credentials&pad=" + b"x" * (17 * 1024),
        headers={**basic_auth(*client), **FORM},
    )

    assert_oauth_error(response, 413, "invalid_request")


async def test_huge_chunked_body_without_content_length_is_413_json(
    app: Litestar, http: AsyncTestClient[Litestar], client: tuple[str, str]
) -> None:
    """Streamed straight into the started app: the test client cannot send a chunked body."""
    chunks = [b"grant_type=client_credentials&pad="] + [b"x" * 1024] * 40
    headers = [
        (b"content-type", b"application/x-www-form-urlencoded"),
        (b"transfer-encoding", b"chunked"),
        *((name.lower().encode(), value.encode()) for name, value in basic_auth(*client).items()),
    ]

    status, answer_headers, answer = _raw_post(http, app, headers, chunks)

    assert status == 413, answer
    assert answer_headers["cache-control"] == "no-store"
    assert answer["error"] == "invalid_request"
    assert set(answer) == {"error", "error_description"}


def _raw_post(
    http: AsyncTestClient[Litestar],
    app: Litestar,
    headers: list[tuple[bytes, bytes]],
    chunks: list[bytes],
) -> tuple[int, dict[str, str], dict[str, Any]]:
    """A POST straight into the started app, on its own loop, headers exactly as given
    (the test client folds repeated ones into one)."""
    chunks = list(chunks)

    async def receive() -> HTTPRequestEvent | HTTPDisconnectEvent:
        if chunks:
            body = chunks.pop(0)
            return HTTPRequestEvent(type="http.request", body=body, more_body=bool(chunks))
        return HTTPDisconnectEvent(type="http.disconnect")

    messages: list[Message] = []

    async def send(message: Message) -> None:
        messages.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": TOKEN_URL,
        "raw_path": TOKEN_URL.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"auth.test"), *headers],
        "client": ("192.0.2.1", 50000),
        "server": ("auth.test", 80),
        "state": {},
    }

    async def post() -> None:
        await app(scope, receive, send)  # type: ignore[arg-type]

    with http.portal() as portal:
        portal.call(post)
    start = next(message for message in messages if message["type"] == "http.response.start")
    answer = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body")
    headers_sent = {name.decode().lower(): value.decode() for name, value in start["headers"]}
    return start["status"], headers_sent, json.loads(answer)


@pytest.mark.parametrize(
    ("content_length", "status"),
    [
        pytest.param("\u00b2", 401, id="superscript-two"),
        pytest.param("9" * 5000, 413, id="5000-digits"),
        pytest.param("0" * 5000 + "29", 401, id="5000-leading-zeros"),
        pytest.param("-1", 401, id="negative"),
    ],
)
async def test_a_content_length_that_is_no_plain_number_is_never_a_500(
    app: Litestar, http: AsyncTestClient[Litestar], content_length: str, status: int
) -> None:
    """`str.isdigit` passes "²" and `int` refuses 5000 digits: a length is ASCII digits
    only, and one too long to read is too large."""
    headers = [
        (b"content-type", FORM["Content-Type"].encode()),
        (b"content-length", content_length.encode("latin-1")),
    ]

    answered, _, answer = _raw_post(http, app, headers, [b"grant_type=client_credentials"])

    assert (answered, answer["error"]) == (
        status,
        "invalid_client" if status == 401 else "invalid_request",
    )


@pytest.mark.parametrize("header", ["authorization", "content-type"])
async def test_a_header_sent_twice_is_invalid_request(
    app: Litestar, http: AsyncTestClient[Litestar], client: tuple[str, str], header: str
) -> None:
    """Two Authorization headers are two ways to authenticate (RFC 6749 §2.3); two
    Content-Types leave the body's type unknown. Neither is guessed at."""
    sent = {
        name.lower().encode(): value.encode()
        for name, value in {**basic_auth(*client), **FORM}.items()
    }
    twice = [*sent.items(), (header.encode(), sent[header.encode()])]

    status, _, answer = _raw_post(http, app, twice, [b"grant_type=client_credentials"])

    assert (status, answer["error"]) == (400, "invalid_request")
    assert header in answer["error_description"]


@pytest.mark.parametrize(
    ("content", "error"),
    [
        pytest.param(b"grant_type=%1F", "unsupported_grant_type", id="control-grant-type"),
        pytest.param(
            'grant_type=sch\u00f6n\\"'.encode(), "unsupported_grant_type", id="quote-backslash"
        ),
        pytest.param(
            b"grant_type=client_credentials&%E2%98%83=1&%E2%98%83=2",
            "invalid_request",
            id="repeated-unicode-name",
        ),
    ],
)
async def test_an_echoed_parameter_keeps_the_description_printable_ascii(
    http: AsyncTestClient[Litestar], client: tuple[str, str], content: bytes, error: str
) -> None:
    """RFC 6749 §5.2: error_description is %x20-21 / %x23-5B / %x5D-7E, also where it
    names what the request held."""
    response = await http.post(TOKEN_URL, content=content, headers={**basic_auth(*client), **FORM})

    assert_oauth_error(response, 400, error)
    assert re.fullmatch(r"[\x20-\x21\x23-\x5b\x5d-\x7e]+", response.json()["error_description"])


# --- Client authentication -------------------------------------------------------------------


@pytest.mark.parametrize("who", ["wrong-secret", "unknown-client", "malformed"])
async def test_failed_basic_authentication_is_401_with_www_authenticate_basic(
    http: AsyncTestClient[Litestar], client: tuple[str, str], who: str
) -> None:
    client_id, secret = client
    headers = {
        "wrong-secret": basic_auth(client_id, secret[::-1]),
        "unknown-client": basic_auth("client_unknown", secret),
        "malformed": {"Authorization": "Basic !!not-base64!!"},
    }[who]

    response = await http.post(
        TOKEN_URL, data={"grant_type": "client_credentials"}, headers=headers
    )

    assert_oauth_error(response, 401, "invalid_client")
    assert response.headers["www-authenticate"].startswith("Basic")


@pytest.mark.parametrize("who", ["wrong-secret", "unknown-client", "no-credentials"])
async def test_failed_client_secret_post_is_401_without_www_authenticate(
    http: AsyncTestClient[Litestar], client: tuple[str, str], who: str
) -> None:
    client_id, secret = client
    credentials = {
        "wrong-secret": {"client_id": client_id, "client_secret": secret[::-1]},
        "unknown-client": {"client_id": "client_unknown", "client_secret": secret},
        "no-credentials": {},
    }[who]

    response = await http.post(TOKEN_URL, data={"grant_type": "client_credentials", **credentials})

    assert_oauth_error(response, 401, "invalid_client")
    assert "www-authenticate" not in response.headers


async def test_client_secret_post_authenticates(
    http: AsyncTestClient[Litestar], client: tuple[str, str]
) -> None:
    client_id, secret = client

    response = await http.post(
        TOKEN_URL,
        data={"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret},
    )

    assert response.status_code == 200, response.text


async def test_revoked_client_is_invalid_client(
    http: AsyncTestClient[Litestar], client: tuple[str, str], settings: AuthSettings
) -> None:
    await execute(
        settings, "UPDATE oauth_clients SET revoked_at = now() WHERE id = :id", id=client[0]
    )

    response = await client_credentials_grant(http, *client)

    assert_oauth_error(response, 401, "invalid_client")


async def test_client_secret_in_body_beside_basic_is_invalid_request(
    http: AsyncTestClient[Litestar], client: tuple[str, str]
) -> None:
    client_id, secret = client

    response = await http.post(
        TOKEN_URL,
        data={"grant_type": "client_credentials", "client_secret": secret},
        headers=basic_auth(client_id, secret),
    )

    assert_oauth_error(response, 400, "invalid_request")


async def test_client_id_in_body_beside_basic_is_accepted_when_it_matches(
    http: AsyncTestClient[Litestar], client: tuple[str, str]
) -> None:
    client_id, secret = client

    response = await http.post(
        TOKEN_URL,
        data={"grant_type": "client_credentials", "client_id": client_id},
        headers=basic_auth(client_id, secret),
    )

    assert response.status_code == 200, response.text


async def test_client_id_in_body_beside_basic_is_invalid_request_when_it_differs(
    http: AsyncTestClient[Litestar], seed: Seed, client: tuple[str, str]
) -> None:
    other_id, _ = await seed.client(name="other")
    client_id, secret = client

    response = await http.post(
        TOKEN_URL,
        data={"grant_type": "client_credentials", "client_id": other_id},
        headers=basic_auth(client_id, secret),
    )

    assert_oauth_error(response, 400, "invalid_request")


@pytest.mark.parametrize(
    "encode",
    [
        pytest.param(_percent_encode_all, id="every-character-percent-encoded"),
        pytest.param(lambda value: value, id="not-encoded"),
    ],
)
async def test_basic_credentials_are_form_urldecoded(
    http: AsyncTestClient[Litestar], client: tuple[str, str], encode: Callable[[str], str]
) -> None:
    client_id, secret = client

    response = await http.post(
        TOKEN_URL,
        data={"grant_type": "client_credentials"},
        headers=_raw_basic(encode(client_id), encode(secret)),
    )

    assert response.status_code == 200, response.text


# --- Grant types and parameters --------------------------------------------------------------


@pytest.mark.parametrize("grant_type", ["implicit", "urn:example:unknown", "PASSWORD"])
async def test_unknown_grant_type_is_unsupported_grant_type(
    http: AsyncTestClient[Litestar], client: tuple[str, str], grant_type: str
) -> None:
    response = await http.post(
        TOKEN_URL, data={"grant_type": grant_type}, headers=basic_auth(*client)
    )

    assert_oauth_error(response, 400, "unsupported_grant_type")


async def test_unknown_parameters_are_ignored(
    http: AsyncTestClient[Litestar], client: tuple[str, str]
) -> None:
    response = await client_credentials_grant(
        http, *client, foo="bar", nonce="n-0S6_WzA2Mj", audience="whatever"
    )

    assert response.status_code == 200, response.text
    assert response.json()["scope"] == "read-posts"


# --- Success responses -----------------------------------------------------------------------


def _assert_token_response(response: httpx.Response, keys: set[str]) -> None:
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["pragma"] == "no-cache"
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == keys
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 900
    assert isinstance(body["expires_in"], int)
    assert isinstance(body["access_token"], str)
    assert isinstance(body["scope"], str)


async def test_success_responses_have_exactly_the_rfc_6749_members_and_no_store(
    http: AsyncTestClient[Litestar], seed: Seed, client: tuple[str, str]
) -> None:
    await seed.user()
    basic = {"access_token", "token_type", "expires_in", "scope"}

    machine = await client_credentials_grant(http, *client)
    _assert_token_response(machine, basic)

    login = await password_grant(http, *client)
    _assert_token_response(login, basic | {"refresh_token"})

    refreshed = await refresh_grant(http, *client, login.json()["refresh_token"])
    _assert_token_response(refreshed, basic | {"refresh_token"})


# --- Discovery and health --------------------------------------------------------------------


async def test_jwks_publishes_public_keys_only_with_a_max_age(
    http: AsyncTestClient[Litestar],
) -> None:
    response = await http.get("/.well-known/jwks.json")

    assert response.status_code == 200
    assert "max-age=300" in response.headers["cache-control"]
    keys = response.json()["keys"]
    assert len(keys) == 1
    for key in keys:
        assert not PRIVATE_JWK_MEMBERS & set(key), key
        assert key["kid"]
        assert key["alg"] == "RS256"
        assert key["use"] == "sig"


class TestJwksWithSeveralKeys:
    @pytest.fixture
    async def app(self, settings: AuthSettings, seed: Seed) -> Litestar:
        """Three keys: the fixture's, a newer active one and a scheduled rotation."""
        await seed.signing_key()

        async def rotate(session: AsyncSession) -> str:
            service = SigningKeyService(session, KeySealer(settings.secret_key))
            key = await service.rotate("ES256", settings.tokens.jwks_max_age)
            return key.kid

        await seed.run(rotate)
        return create_app(settings)

    async def test_every_key_is_published_once_without_private_parts(
        self, http: AsyncTestClient[Litestar], seed: Seed, client: tuple[str, str]
    ) -> None:
        response = await http.get("/.well-known/jwks.json")

        keys = response.json()["keys"]
        kids = [key["kid"] for key in keys]
        assert len(kids) == 3
        assert len(set(kids)) == 3
        for key in keys:
            assert not PRIVATE_JWK_MEMBERS & set(key), key
        assert {key["alg"] for key in keys} == {"RS256", "ES256"}


async def test_server_metadata_names_issuer_token_endpoint_and_jwks(
    http: AsyncTestClient[Litestar],
) -> None:
    response = await http.get("/.well-known/oauth-authorization-server")

    assert response.status_code == 200
    metadata = response.json()
    assert metadata["issuer"] == ISSUER
    assert metadata["token_endpoint"] == f"{ISSUER}{TOKEN_URL}"
    assert metadata["jwks_uri"] == f"{ISSUER}/.well-known/jwks.json"
    assert set(metadata["grant_types_supported"]) >= {
        "password",
        "client_credentials",
        "refresh_token",
    }
    jwks = await http.get(metadata["jwks_uri"])
    assert jwks.status_code == 200


async def test_scopes_route_lists_the_configured_scopes(http: AsyncTestClient[Litestar]) -> None:
    response = await http.get("/oauth/scopes")

    assert response.status_code == 200
    scopes = {entry["id"]: entry for entry in response.json()}
    assert set(scopes) == {"read-posts", "write-posts", "admin"}
    assert all(entry["description"] for entry in scopes.values())
    assert scopes["admin"]["privileged"] is True
    assert scopes["read-posts"]["privileged"] is False


async def test_healthz_and_readyz_answer_200(http: AsyncTestClient[Litestar]) -> None:
    live = await http.get("/healthz")
    ready = await http.get("/readyz")

    assert live.status_code == 200
    assert live.json() == {"status": "ok"}
    assert ready.status_code == 200, ready.text
    assert ready.json() == {"status": "ok", "database": "ok", "redis": "ok"}


async def test_password_grant_with_no_client_authentication_is_invalid_client(
    http: AsyncTestClient[Litestar], seed: Seed
) -> None:
    await seed.user()

    response = await http.post(
        TOKEN_URL,
        data={"grant_type": "password", "username": USER_EMAIL, "password": USER_PASSWORD},
    )

    assert_oauth_error(response, 401, "invalid_client")
    assert "www-authenticate" not in response.headers


@pytest.mark.parametrize(
    "form",
    [
        {"grant_type": "client_credentials", "scope": "read-posts {secret}"},
        {"grant_type": "{secret}"},
        {"grant_type": "client_credentials", "{secret}": "x"},
    ],
    ids=["unknown-scope", "unknown-grant-type", "unknown-parameter"],
)
async def test_what_the_server_does_not_know_is_not_echoed(
    http: AsyncTestClient[Litestar], client: tuple[str, str], form: dict[str, str]
) -> None:
    """A secret pasted into the wrong field must not come back in the error body (nor in
    the logs and traces that may keep it): only names the server knows are repeated."""
    secret = "hunter2-" + "s3cr3t" * 4
    body = "&".join(
        f"{name.format(secret=secret)}={value.format(secret=secret)}"
        for name, value in form.items()
    )
    if "{secret}" in "".join(form):
        body += f"&{secret}=again"  # a parameter given twice
    answer = await http.post(TOKEN_URL, content=body, headers={**FORM, **basic_auth(*client)})
    assert answer.status_code == 400, answer.text
    assert secret not in answer.text
