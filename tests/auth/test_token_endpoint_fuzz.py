"""Random and malformed requests to POST /oauth/token: every one gets a token or an
RFC 6749 §5.2 error, never a 500 and never a trace (docs/security.md, error contract).

test_token_endpoint_errors.py pins each known malformation to its exact answer; this file
throws what nobody listed at the endpoint: random form pairs, repeated parameters,
percent-escapes that decode to nothing, bodies that are not UTF-8 or not forms, odd content
types, Authorization headers of every shape, repeated headers, lying or garbage
Content-Length, bodies split across chunks. Requests go straight into the running app as
ASGI messages, so headers reach it exactly as generated (the test client folds repeated
headers and refuses non-ASCII ones), on the app's own event loop, against real Postgres
and Redis.

Hypothesis runs derandomized and without its example database: CI plays the same inputs
on every run (until this file or Hypothesis changes), so a failure there is a failure here,
and the time stays put, about 10 s for the four tests here. Every example of a test shares one
app, database and client: what an example leaves behind (a token issued, a login failure
counted) is state a real server carries too, and every answer must still be a proper one.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from itertools import pairwise
from typing import Any, Generic, TypeVar
from urllib.parse import quote, quote_plus, urlencode

import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st
from litestar import Litestar
from litestar.testing import AsyncTestClient
from litestar.types import HTTPDisconnectEvent, HTTPRequestEvent, Message

from tests.auth.conftest import USER_PASSWORD, Seed
from tests.auth.helpers import TOKEN_URL, USER_EMAIL

Http = AsyncTestClient[Litestar]
T = TypeVar("T")

TOKEN_ERRORS = frozenset(
    {
        # RFC 6749 §5.2
        "invalid_request",
        "invalid_client",
        "invalid_grant",
        "unauthorized_client",
        "unsupported_grant_type",
        "invalid_scope",
        # RFC 8707 §2
        "invalid_target",
        # RFC 8628 §3.5
        "authorization_pending",
        "slow_down",
        "access_denied",
        "expired_token",
        # Throttled logins (429); RFC 6749 §4.1.2.1's code for "not now"
        "temporarily_unavailable",
    }
)
ERROR_DESCRIPTION = re.compile(r"[\x20-\x21\x23-\x5b\x5d-\x7e]+")
"""RFC 6749 §5.2: printable ASCII but for `"` and `\\`, whatever the request held."""
ANSWER_STATUSES = frozenset({200, 400, 401, 413, 429})
"""503 is for a backend that is down, which none is here; a value the database refuses is
the request's fault, a 400."""

FUZZ_SETTINGS = settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

CLIENT_ID = "<client_id>"
CLIENT_SECRET = "<client_secret>"
"""Stand-ins the strategies use for the test client's credentials, known only at run time."""

PARAMETERS = (
    "grant_type",
    "client_id",
    "client_secret",
    "scope",
    "username",
    "password",
    "refresh_token",
    "code",
    "redirect_uri",
    "code_verifier",
    "device_code",
    "resource",
)
MEANINGFUL_VALUES = (
    "password",
    "client_credentials",
    "refresh_token",
    "authorization_code",
    "urn:ietf:params:oauth:grant-type:device_code",
    "implicit",
    "read-posts",
    "read-posts write-posts",
    "admin",
    "posts",
    "https://app.example/callback",
    "v" * 43,
    USER_EMAIL,
    USER_PASSWORD,
    CLIENT_ID,
    CLIENT_SECRET,
    "",
)
PERCENT_GARBAGE = ("%", "%G1", "%zz", "%ff", "%c3%28", "%e2%82", "%00", "%25", "&&", "==", "+")
CONTENT_TYPES = (
    "application/x-www-form-urlencoded",
    "application/x-www-form-urlencoded; charset=utf-8",
    "application/x-www-form-urlencoded; charset=UTF-8",
    'application/x-www-form-urlencoded; charset="utf-8"',
    "application/x-www-form-urlencoded; charset=iso-8859-1",
    "application/x-www-form-urlencoded; charset=utf-16",
    "APPLICATION/X-WWW-FORM-URLENCODED",
    "application/x-www-form-urlencoded;",
    " application/x-www-form-urlencoded ",
    "application/x-www-form-urlencoded, application/json",
    "multipart/form-data; boundary=b",
    "multipart/form-data",
    "application/json",
    "text/plain",
    "application/x-www-form-urlencoded\x00",
    "",
)
CONTENT_LENGTHS = (
    "-1",
    "abc",
    "1e3",
    " 5",
    "0x10",
    "²",
    "¹³",
    "9" * 20,
    "9" * 5000,
    "0" * 5000 + "7",
)
"""Sent as Latin-1, as a server reads header bytes: "²" is the byte 0xB2."""


@pytest.fixture
def settings_overrides() -> dict[str, str]:
    """Few password failures before a login backs off: past them a password grant is a
    cheap 429 instead of an argon2 check, so the examples stay fast. Request budgets
    off: every example comes from one address, and a spent budget would answer every
    later example with the same 429, whatever it sent."""
    return {"login_max_failures_per_ip": "5", "rate_limits": "off"}


@pytest.fixture
async def credentials(seed: Seed) -> dict[str, str]:
    await seed.user()
    client_id, secret = await seed.client(
        grant_types=("password", "client_credentials", "refresh_token", "authorization_code"),
        redirect_uris=("https://app.example/callback",),
    )
    assert secret is not None
    return {CLIENT_ID: client_id, CLIENT_SECRET: secret}


# --- what is sent ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Part(Generic[T]):
    """A piece of a request, made once the test client's credentials are known. Its repr
    says what it is, for Hypothesis to print when an example fails."""

    shows: str
    make: Callable[[dict[str, str]], T]

    def __call__(self, credentials: dict[str, str]) -> T:
        return self.make(credentials)

    def __repr__(self) -> str:
        return f"<{self.shows:.400}>"


@dataclass(frozen=True, slots=True)
class RawRequest:
    headers: tuple[tuple[bytes, bytes], ...]
    chunks: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class RawAnswer:
    status: int
    headers: dict[str, str]
    body: bytes


def _fill_in(text: str, credentials: dict[str, str]) -> str:
    for stand_in, value in credentials.items():
        text = text.replace(stand_in, value)
    return text


def _repeated(text: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """A short text repeated up to past the body limit: a huge value without generating
    every character of it."""
    return st.builds(lambda part, times: part * times, text, st.integers(1, 20_000))


values = st.one_of(
    st.sampled_from(MEANINGFUL_VALUES),
    st.text(max_size=40),
    _repeated(st.text(min_size=1, max_size=3)),
)
names = st.one_of(st.sampled_from(PARAMETERS), st.text(max_size=12))
GRANT_TYPES = MEANINGFUL_VALUES[:6]
CLIENT_PARAMETERS = ("client_id", "client_secret")
pairs = st.one_of(
    st.lists(st.tuples(names, values), max_size=8),
    # A grant the client may use, with parameters of its kind: past client authentication
    # and into the grants, where the values reach the database.
    st.builds(
        lambda grant_type, rest: [("grant_type", grant_type), *rest],
        st.sampled_from(GRANT_TYPES),
        st.lists(st.tuples(st.sampled_from(PARAMETERS), values), max_size=5),
    ),
)


def _splice(body: str, garbage: str, where: int) -> str:
    at = where % (len(body) + 1)
    return body[:at] + garbage + body[at:]


@st.composite
def form_bodies(draw: st.DrawFn) -> str:
    """A form as a client might send it: well encoded, not encoded, or with broken escapes;
    parameters may repeat."""
    drawn = draw(pairs)
    style = draw(st.sampled_from(("encoded", "quote", "raw", "garbage")))
    if style == "encoded":
        return urlencode(drawn)
    if style == "quote":
        return "&".join(f"{quote(name)}={quote(value)}" for name, value in drawn)
    body = "&".join(f"{name}={value}" for name, value in drawn)
    if style == "garbage":
        for garbage in draw(st.lists(st.sampled_from(PERCENT_GARBAGE), min_size=1, max_size=3)):
            body = _splice(body, garbage, draw(st.integers(0, 10_000)))
    return body


@st.composite
def body_bytes(draw: st.DrawFn) -> Part[bytes]:
    """A body: a form in some encoding (not always UTF-8), or bytes that are no form."""
    kind = draw(st.sampled_from(("form", "form", "form", "form", "binary", "empty", "huge")))
    if kind == "binary":
        raw = draw(st.binary(max_size=200))
        return Part(f"bytes {raw!r}", lambda _: raw)
    if kind == "empty":
        return Part("no body", lambda _: b"")
    if kind == "huge":
        size = draw(st.integers(16 * 1024 - 8, 40 * 1024))
        huge = b"grant_type=client_credentials&pad=" + b"x" * size
        return Part(f"a form padded to {len(huge)} bytes", lambda _: huge)
    form = draw(form_bodies())
    encoding = draw(st.sampled_from(("utf-8", "utf-8", "latin-1", "utf-16", "cp1252")))
    return Part(
        f"{form!r} in {encoding}",
        lambda credentials: _fill_in(form, credentials).encode(encoding, errors="replace"),
    )


@st.composite
def authorizations(draw: st.DrawFn) -> Part[bytes | None]:
    """Authorization headers of every shape: none, Basic right and wrong, encoded or not,
    bad base64, other schemes, and bytes that are no text at all."""
    kind = draw(
        st.sampled_from(
            (
                "none",
                "basic",
                "basic",
                "basic-text",
                "base64-bytes",
                "not-base64",
                "scheme",
                "bytes",
            )
        )
    )
    if kind == "none":
        return Part("no Authorization", lambda _: None)
    if kind == "bytes":
        raw = draw(st.binary(max_size=80))
        return Part(f"bytes {raw!r}", lambda _: raw)
    if kind == "base64-bytes":
        encoded = b"Basic " + base64.b64encode(draw(st.binary(max_size=60)))
        return Part(f"{encoded!r}", lambda _: encoded)
    scheme = draw(st.sampled_from(("Basic", "basic", "BASIC", "Bearer", "Digest", "", "Basic ")))
    if kind == "not-base64":
        text = f"{scheme} {draw(st.text(max_size=40))}"
        return Part(f"{text!r}", lambda _: text.encode(errors="replace"))
    user = draw(st.sampled_from((CLIENT_ID, "", "client_unknown")) | st.text(max_size=20))
    secret = draw(st.sampled_from((CLIENT_SECRET, "", "wrong")) | st.text(max_size=20))
    separator = draw(st.sampled_from((":", ":", "", "::")))
    form_encode = draw(st.booleans())
    to_bytes = draw(st.sampled_from(("utf-8", "latin-1")))

    def header(credentials: dict[str, str]) -> bytes:
        parts = [_fill_in(part, credentials) for part in (user, secret)]
        if form_encode:
            parts = [quote_plus(part) for part in parts]
        raw = separator.join(parts).encode(to_bytes, errors="replace")
        if kind == "basic-text":
            return f"{scheme} ".encode() + raw
        return f"{scheme} ".encode() + base64.b64encode(raw)

    shows = f"{kind} {scheme!r} {user!r} {separator!r} {secret!r}"
    return Part(f"{shows}, {'form-encoded, ' if form_encode else ''}{to_bytes}", header)


content_types = st.one_of(
    st.none(), st.sampled_from(CONTENT_TYPES).map(str.encode), st.binary(max_size=40)
)
content_lengths = st.one_of(
    st.sampled_from(("right", "right", "none", "short", "long")),
    st.sampled_from(CONTENT_LENGTHS).map(lambda value: value.encode("latin-1")),
    st.binary(max_size=12),
)


def _content_length(choice: str | bytes, body: bytes) -> bytes | None:
    if isinstance(choice, bytes):
        return choice
    lengths = {"right": len(body), "short": max(0, len(body) - 3), "long": len(body) + 7}
    return None if choice == "none" else str(lengths[choice]).encode()


@st.composite
def raw_requests(
    draw: st.DrawFn,
    *,
    body: st.SearchStrategy[Part[bytes]],
    authorization: st.SearchStrategy[Part[bytes | None]],
    content_type: st.SearchStrategy[bytes | None],
    content_length: st.SearchStrategy[str | bytes],
    repeat_headers: bool,
) -> Part[RawRequest]:
    make_body = draw(body)
    make_authorization = draw(authorization)
    media_type = draw(content_type)
    length = draw(content_length)
    repeats = draw(st.lists(st.integers(0, 10), max_size=3)) if repeat_headers else []
    repeat_value = draw(st.sampled_from(("same", "empty", "other")))
    cuts = draw(st.lists(st.integers(0, 1000), max_size=3))

    def build(credentials: dict[str, str]) -> RawRequest:
        sent = make_body(credentials)
        headers: list[tuple[bytes, bytes]] = []
        for name, value in (
            (b"content-type", media_type),
            (b"authorization", make_authorization(credentials)),
            (b"content-length", _content_length(length, sent)),
        ):
            if value is not None:
                headers.append((name, value))
        for index in repeats:
            if headers:
                name, value = headers[index % len(headers)]
                other = {"same": value, "empty": b"", "other": value[::-1]}[repeat_value]
                headers.append((name, other))
        positions = sorted({cut * len(sent) // 1000 for cut in cuts})
        edges = [0, *positions, len(sent)]
        chunks = tuple(sent[start:end] for start, end in pairwise(edges))
        return RawRequest(tuple(headers), chunks)

    shows = (
        f"body {make_body!r}, authorization {make_authorization!r}, content-type"
        f" {media_type!r}, content-length {length!r:.40}, repeated {repeats} ({repeat_value}),"
        f" cut at {cuts}"
    )
    return Part(shows, build)


VALID_FORM = b"grant_type=client_credentials&scope=read-posts"


FIXED_BODY = Part(f"{VALID_FORM!r}", lambda _: VALID_FORM)


def _basic(credentials: dict[str, str]) -> bytes | None:
    pair = f"{quote_plus(credentials[CLIENT_ID])}:{quote_plus(credentials[CLIENT_SECRET])}"
    return b"Basic " + base64.b64encode(pair.encode())


VALID_BASIC = Part("the client's Basic credentials", _basic)


FORM_TYPE = st.just(b"application/x-www-form-urlencoded")


# --- sending it --------------------------------------------------------------------------------


async def _exchange(app: Litestar, request: RawRequest) -> RawAnswer:
    """One request as an ASGI server hands it over: the body in its chunks, then silence
    until the answer is sent, then the disconnect."""
    pending = list(request.chunks) or [b""]
    answered = asyncio.Event()
    messages: list[Message] = []

    async def receive() -> HTTPRequestEvent | HTTPDisconnectEvent:
        if pending:
            body = pending.pop(0)
            return HTTPRequestEvent(type="http.request", body=body, more_body=bool(pending))
        await answered.wait()
        return HTTPDisconnectEvent(type="http.disconnect")

    async def send(message: Message) -> None:
        messages.append(message)
        if message["type"] == "http.response.body" and not message.get("more_body", False):
            answered.set()

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
        "headers": [(b"host", b"auth.test"), *request.headers],
        "client": ("192.0.2.1", 50000),
        "server": ("auth.test", 80),
        "state": {},
    }
    await app(scope, receive, send)  # type: ignore[arg-type]
    start = next(message for message in messages if message["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body")
    headers = {name.decode().lower(): value.decode() for name, value in start["headers"]}
    return RawAnswer(start["status"], headers, body)


def _send(http: Http, request: RawRequest) -> RawAnswer:
    """On the app's own event loop, where its database and Redis connections live."""
    answer: RawAnswer = http.blocking_portal.call(_exchange, http.app, request)
    return answer


def assert_token_or_rfc6749_error(answer: RawAnswer, request: RawRequest) -> None:
    context = f"{request!r:.2000} -> {answer!r:.2000}"
    assert answer.status in ANSWER_STATUSES, context
    assert answer.headers.get("content-type", "").startswith("application/json"), context
    assert answer.headers.get("cache-control") == "no-store", context
    body: dict[str, Any] = json.loads(answer.body)
    if answer.status == 200:
        assert body["token_type"] == "Bearer", context
        assert isinstance(body["access_token"], str), context
        return
    assert set(body) == {"error", "error_description"}, context
    assert body["error"] in TOKEN_ERRORS, context
    assert isinstance(body["error_description"], str), context
    assert body["error_description"], context
    assert "Traceback" not in body["error_description"], context
    assert ERROR_DESCRIPTION.fullmatch(body["error_description"]), context
    assert (answer.status == 401) == (body["error"] == "invalid_client"), context
    if answer.status == 429:
        assert body["error"] == "temporarily_unavailable", context
        assert answer.headers.get("retry-after", "").isdigit(), context
        assert "ratelimit-limit" not in answer.headers, context  # the login back-off only


def _assert_answered(http: Http, build: Part[RawRequest], credentials: dict[str, str]) -> None:
    note(f"recipe: {build!r}")
    request = build(credentials)
    assert_token_or_rfc6749_error(_send(http, request), request)


# --- the tests ---------------------------------------------------------------------------------


@FUZZ_SETTINGS
@given(
    build=raw_requests(
        body=body_bytes(),
        authorization=st.one_of(st.just(VALID_BASIC), st.just(VALID_BASIC), authorizations()),
        content_type=st.one_of(FORM_TYPE, FORM_TYPE, FORM_TYPE, content_types),
        content_length=st.just("right"),
        repeat_headers=False,
    )
)
async def test_any_body_gets_a_token_or_an_rfc6749_error(
    http: Http, credentials: dict[str, str], build: Part[RawRequest]
) -> None:
    _assert_answered(http, build, credentials)


@FUZZ_SETTINGS
@given(
    build=raw_requests(
        body=st.just(FIXED_BODY),
        authorization=authorizations(),
        content_type=FORM_TYPE,
        content_length=st.just("right"),
        repeat_headers=False,
    )
)
async def test_any_authorization_header_gets_a_token_or_an_rfc6749_error(
    http: Http, credentials: dict[str, str], build: Part[RawRequest]
) -> None:
    _assert_answered(http, build, credentials)


@FUZZ_SETTINGS
@given(
    build=raw_requests(
        body=st.just(FIXED_BODY) | body_bytes(),
        authorization=st.just(VALID_BASIC) | authorizations(),
        content_type=FORM_TYPE | content_types,
        content_length=content_lengths,
        repeat_headers=True,
    )
)
async def test_any_headers_and_framing_get_a_token_or_an_rfc6749_error(
    http: Http, credentials: dict[str, str], build: Part[RawRequest]
) -> None:
    """Repeated headers, a Content-Length that lies or is no number, a body in chunks."""
    _assert_answered(http, build, credentials)


@st.composite
def grant_parameters(draw: st.DrawFn) -> Part[bytes]:
    """A well-formed form of one grant with odd values: each parameter once, every value
    well encoded, so the values themselves reach the grants, the store and Redis."""
    grant_type = draw(st.sampled_from(GRANT_TYPES))
    parameters = draw(
        st.dictionaries(
            st.sampled_from([name for name in PARAMETERS if name not in CLIENT_PARAMETERS]),
            st.one_of(
                st.sampled_from(MEANINGFUL_VALUES),
                st.text(min_size=1, max_size=60),
                _repeated(st.text(min_size=1, max_size=3)).map(lambda value: value[:5000]),
            ),
            max_size=5,
        )
    )
    form = {**parameters, "grant_type": grant_type}
    return Part(
        f"{form!r}",
        lambda credentials: urlencode(
            {name: _fill_in(value, credentials) for name, value in form.items()}
        ).encode(),
    )


@FUZZ_SETTINGS
@given(
    build=raw_requests(
        body=grant_parameters(),
        authorization=st.just(VALID_BASIC),
        content_type=FORM_TYPE,
        content_length=st.just("right"),
        repeat_headers=False,
    )
)
async def test_any_grant_parameters_get_a_token_or_an_rfc6749_error(
    http: Http, credentials: dict[str, str], build: Part[RawRequest]
) -> None:
    _assert_answered(http, build, credentials)
