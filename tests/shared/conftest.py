"""Guard fixtures: signing keys, a token forge, and real loopback servers.

Nothing here stands in for our own code. The JWKS comes from a real HTTP
server on 127.0.0.1 (a thread that counts requests, can change its key set
and can go down), Redis is the real one (through a counting TCP proxy where a
test needs to see the commands), and the app under test is a small Litestar
app with the real `PortcullisGuard` mounted.

`litestar.testing.AsyncTestClient` runs the app on a blocking portal: another
thread with its own event loop, while the test's loop waits. Every server a
request depends on therefore runs on a thread of its own, and the guard opens
its own Redis connection (from `GuardConfig.redis_url`) inside the app's loop.
"""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import msgspec
import pytest
import redis.asyncio as aioredis
from joserfc.jwk import ECKey, OKPKey, RSAKey
from joserfc.jws import JWSRegistry
from litestar import Litestar, Request, get
from litestar.testing import AsyncTestClient

from portcullis_shared.claims import AccessTokenClaims
from portcullis_shared.guards import client_only, scope, scopes, user_required
from portcullis_shared.plugin import GuardConfig, PortcullisGuard
from portcullis_shared.principal import Principal
from portcullis_shared.revocation import RevocationKeys

ISSUER = "https://auth.portcullis.test"
AUDIENCE = "posts"
REALM = "posts-api"
USER_CLIENT = "web-app"
SERVICE_CLIENT = "billing-worker"
LEEWAY = 30


# --- keys and the token forge -------------------------------------------------------------


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def compact_json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


@dataclass(frozen=True)
class SigningKey:
    key: RSAKey | ECKey | OKPKey
    kid: str
    alg: str

    def public_jwk(self, **members: Any) -> dict[str, Any]:
        return {
            **self.key.as_dict(private=False),
            "kid": self.kid,
            "alg": self.alg,
            "use": "sig",
            **members,
        }

    def jwks(self) -> dict[str, Any]:
        return {"keys": [self.public_jwk()]}


def jwks_of(*keys: SigningKey) -> dict[str, Any]:
    return {"keys": [key.public_jwk() for key in keys]}


def sign(
    header: dict[str, Any] | bytes,
    payload: dict[str, Any] | bytes,
    key: SigningKey | None,
    *,
    alg: str | None = None,
) -> str:
    """A compact JWS built by hand: any header, any payload, no checks.

    `key=None` leaves the signature empty (an unsigned token).
    """
    header_bytes = header if isinstance(header, bytes) else compact_json(header)
    payload_bytes = payload if isinstance(payload, bytes) else compact_json(payload)
    signing_input = f"{b64url(header_bytes)}.{b64url(payload_bytes)}"
    signature = b""
    if key is not None:
        algorithm = JWSRegistry.algorithms[alg or key.alg]
        signature = algorithm.sign(signing_input.encode("ascii"), key.key)
    return f"{signing_input}.{b64url(signature)}"


def access_claims(*, drop: Iterable[str] = (), **overrides: Any) -> dict[str, Any]:
    """The claims of a valid user token for this service, changed as told."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "sub": str(uuid.uuid4()),
        "aud": AUDIENCE,
        "exp": now + 900,
        "iat": now,
        "jti": str(uuid.uuid4()),
        "client_id": USER_CLIENT,
        "scope": "read-posts",
        "sid": str(uuid.uuid4()),
        **overrides,
    }
    for name in drop:
        del claims[name]
    return claims


def client_claims(**overrides: Any) -> dict[str, Any]:
    """The claims of a client-credentials token (`sub == client_id`)."""
    return access_claims(sub=SERVICE_CLIENT, client_id=SERVICE_CLIENT, **overrides)


def claims_of(raw: dict[str, Any]) -> AccessTokenClaims:
    """Claims as the verifier hands them to a revocation list."""
    return msgspec.convert(raw, AccessTokenClaims)


def header_for(key: SigningKey, *, drop: Iterable[str] = (), **members: Any) -> dict[str, Any]:
    header: dict[str, Any] = {"alg": key.alg, "kid": key.kid, "typ": "at+jwt", **members}
    for name in drop:
        del header[name]
    return header


def mint(key: SigningKey, claims: dict[str, Any] | None = None, **header_members: Any) -> str:
    """A token signed by `key` with a proper header (plus any extra members)."""
    return sign(header_for(key, **header_members), claims or access_claims(), key)


def bearer(token: str, scheme: str = "Bearer") -> dict[str, str]:
    return {"Authorization": f"{scheme} {token}"}


@pytest.fixture(scope="session")
def rsa_key() -> SigningKey:
    """The auth service's signing key: the JWKS publishes it."""
    return SigningKey(RSAKey.generate_key(2048, private=True), kid="key-2025-01", alg="RS256")


@pytest.fixture(scope="session")
def second_rsa_key() -> SigningKey:
    """A key the auth service rotates to."""
    return SigningKey(RSAKey.generate_key(2048, private=True), kid="key-2025-02", alg="RS256")


@pytest.fixture(scope="session")
def attacker_key(rsa_key: SigningKey) -> SigningKey:
    """A stranger's RSA key that claims the real key's kid."""
    return SigningKey(RSAKey.generate_key(2048, private=True), kid=rsa_key.kid, alg="RS256")


@pytest.fixture(scope="session")
def ec_key() -> SigningKey:
    return SigningKey(ECKey.generate_key("P-256", private=True), kid="ec-2025-01", alg="ES256")


# --- a real JWKS server on loopback -------------------------------------------------------


@dataclass
class JWKSServer:
    """Serves a JWKS over real HTTP from a thread; counts requests; can go down and come back."""

    document: Any
    cache_control: str | None = "max-age=300"
    delay: float = 0.0
    """Seconds to wait before answering (to keep a fetch in flight)."""
    status: int = 200
    location: str | None = None
    """With a 3xx status: where the redirect points."""
    path: str = "/.well-known/jwks.json"
    port: int = 0
    _requests: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.path}"

    @property
    def requests(self) -> int:
        with self._lock:
            return len(self._requests)

    @property
    def paths(self) -> list[str]:
        with self._lock:
            return list(self._requests)

    @property
    def running(self) -> bool:
        return self._server is not None

    def start(self) -> None:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner._answer(self)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Go down: the port refuses connections until `start()` again."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        assert self._thread is not None
        self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def _answer(self, handler: BaseHTTPRequestHandler) -> None:
        with self._lock:
            self._requests.append(handler.path)
            document, status, location = self.document, self.status, self.location
            cache_control, delay = self.cache_control, self.delay
        if delay:
            time.sleep(delay)  # wall time: a slow server, so a fetch stays in flight meanwhile
        if status != 200:
            handler.send_response(status)
            if location is not None:
                handler.send_header("Location", location)
            handler.send_header("Content-Length", "0")
            handler.end_headers()
            return
        body = compact_json(document)
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        if cache_control is not None:
            handler.send_header("Cache-Control", cache_control)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)


@pytest.fixture
def jwks_server(rsa_key: SigningKey) -> Iterator[JWKSServer]:
    """The auth service's JWKS endpoint, publishing `rsa_key`."""
    server = JWKSServer(rsa_key.jwks())
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def trap_server(attacker_key: SigningKey) -> Iterator[JWKSServer]:
    """An attacker's key server: the guard must never call it."""
    server = JWKSServer(attacker_key.jwks(), path="/attacker/jwks.json")
    server.start()
    try:
        yield server
    finally:
        server.stop()


# --- a counting Redis proxy on loopback ---------------------------------------------------


class RedisCommandProxy:
    """A TCP proxy in front of the real Redis that records each command it forwards.

    It runs its own event loop on a thread (the app under test runs on another
    loop, and the test's loop is blocked while a request is served). Commands
    are parsed from the RESP2/RESP3 request stream redis-py writes: arrays of
    bulk strings.
    """

    def __init__(self, upstream_url: str) -> None:
        parts = urlsplit(upstream_url)
        self._upstream = (parts.hostname or "127.0.0.1", parts.port or 6379)
        self._db = parts.path.lstrip("/") or "0"
        self._lock = threading.Lock()
        self._commands: list[list[bytes]] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self.port = 0
        self.refusing = False
        """While True, new connections are closed at once (Redis unreachable)."""

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/{self._db}"

    @property
    def commands(self) -> list[list[bytes]]:
        with self._lock:
            return [list(command) for command in self._commands]

    def start(self) -> None:
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._accept, "127.0.0.1", 0), self._loop
        ).result(timeout=5)
        self.port = self._server.sockets[0].getsockname()[1]

    def close(self) -> None:
        async def shutdown() -> None:
            assert self._server is not None
            self._server.close()
            for writer in list(self._writers):
                writer.close()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await self._server.wait_closed()

        asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(timeout=5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()

    def drop_connections(self) -> None:
        """Cut every connection through the proxy, as a network failure would."""

        async def drop() -> None:
            for writer in list(self._writers):
                writer.close()

        asyncio.run_coroutine_threadsafe(drop(), self._loop).result(timeout=5)

    def _spawn(self, coroutine: Any) -> None:
        task: asyncio.Task[None] = self._loop.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.refusing:
            writer.close()
            return
        up_reader, up_writer = await asyncio.open_connection(*self._upstream)
        self._writers.update({writer, up_writer})
        self._spawn(self._pipe(up_reader, writer))
        await self._client_to_redis(reader, up_writer)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    async def _client_to_redis(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        try:
            while True:
                line = await reader.readline()
                if not line:
                    break
                assert line.startswith(b"*"), f"unexpected RESP request {line!r}"
                raw = [line]
                command: list[bytes] = []
                for _ in range(int(line[1:-2])):
                    size_line = await reader.readline()
                    assert size_line.startswith(b"$"), f"unexpected RESP item {size_line!r}"
                    item = await reader.readexactly(int(size_line[1:-2]) + 2)
                    raw += [size_line, item]
                    command.append(item[:-2])
                with self._lock:
                    self._commands.append(command)
                writer.write(b"".join(raw))
                await writer.drain()
        except (ConnectionError, OSError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


@pytest.fixture
def redis_proxy(redis_url: str) -> Iterator[RedisCommandProxy]:
    proxy = RedisCommandProxy(redis_url)
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.close()


# --- the app under test -------------------------------------------------------------------


def principal_data(principal: Principal) -> dict[str, Any]:
    return {
        "subject": principal.subject,
        "client_id": principal.client_id,
        "scopes": sorted(principal.scopes),
        "is_client": principal.is_client,
        "user_id": None if principal.user_id is None else str(principal.user_id),
        "token_id": principal.token_id,
        "grant_id": principal.grant_id,
        "can_read": principal.can("read-posts"),
        "can_write": principal.can("write-posts"),
        "can_admin": principal.can("admin"),
    }


@get("/api/me")
async def me(request: Request[Principal, Principal, Any]) -> dict[str, Any]:
    return principal_data(request.user)


@get("/api/posts", guards=[scopes("read-posts")])
async def list_posts() -> dict[str, str]:
    return {"route": "list"}


@get("/api/posts/editor", guards=[scopes("read-posts", "write-posts")])
async def editor() -> dict[str, str]:
    return {"route": "editor"}


@get("/api/posts/any", guards=[scope("write-posts", "admin")])
async def any_of() -> dict[str, str]:
    return {"route": "any"}


@get("/api/user-only", guards=[user_required])
async def user_only() -> dict[str, str]:
    return {"route": "user"}


@get("/api/client-only", guards=[client_only])
async def client_only_route() -> dict[str, str]:
    return {"route": "client"}


@get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


def guarded_app(guard: PortcullisGuard) -> Litestar:
    return Litestar(
        route_handlers=[me, list_posts, editor, any_of, user_only, client_only_route, healthz],
        plugins=[guard],
    )


def guard_config(**overrides: Any) -> GuardConfig:
    settings: dict[str, Any] = {
        "issuer": ISSUER,
        "audience": AUDIENCE,
        "realm": REALM,
        "leeway": LEEWAY,
        **overrides,
    }
    return GuardConfig(**settings)


@pytest.fixture
def revocation_keys(redis_prefix: str) -> RevocationKeys:
    return RevocationKeys(redis_prefix)


@pytest.fixture
async def marked(redis_client: aioredis.Redis, revocation_keys: RevocationKeys) -> None:
    """The revocation list is complete: the marker, as the auth service writes it (a timestamp)."""
    await redis_client.set(revocation_keys.marker, str(int(time.time())))


@pytest.fixture
async def http(
    jwks_server: JWKSServer, redis_url: str, redis_prefix: str, marked: None
) -> AsyncIterator[AsyncTestClient[Litestar]]:
    """The guarded app as deployed: keys from the JWKS URL, revocations from Redis.

    The feed is off: these tests write entries straight into Redis, unannounced,
    to test the list itself (test_revocation_feed.py tests the feed)."""
    guard = PortcullisGuard(
        guard_config(
            jwks_url=jwks_server.url,
            redis_url=redis_url,
            redis_prefix=redis_prefix,
            revocation_feed=False,
        )
    )
    async with AsyncTestClient(app=guarded_app(guard)) as client:
        yield client


def assert_invalid_token(response: Any, realm: str = REALM) -> None:
    """RFC 6750 §3.1: 401 with an `invalid_token` challenge."""
    assert response.status_code == 401, (response.status_code, response.text)
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith(f'Bearer realm="{realm}", '), challenge
    assert 'error="invalid_token"' in challenge, challenge
    assert response.json()["error"] == "invalid_token"


def assert_unavailable(response: Any) -> None:
    """Fail closed: 503 with Retry-After, no challenge, nothing served."""
    assert response.status_code == 503, (response.status_code, response.text)
    assert int(response.headers["retry-after"]) >= 1
    assert "www-authenticate" not in response.headers
    assert response.json()["error"] == "temporarily_unavailable"
