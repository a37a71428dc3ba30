"""The scaling twins: a posts service reading a list of a million revoked entries, one
reading a JWKS of twenty keys, and an auth service over a million rows in each token
table, each loaded side by side with the service it varies."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import redis
from joserfc.jwk import RSAKey

from bench.databases import create_databases, pg, with_database
from bench.servers import free_port
from bench.settings import DATABASE_URL, REDIS_URL
from bench.stack import Stack

MILLION = 1_000_000
SYNCED = r"revocation filter synced: (\d+) entries read in ([\d.]+) s"


class StaticJWKS:
    """A JWKS endpoint serving the auth service's keys plus extra public keys of its own."""

    def __init__(self) -> None:
        self.document = b'{"keys": []}'
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Cache-Control", "max-age=300")
                self.end_headers()
                self.wfile.write(outer.document)

            def log_message(self, *_: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/jwks.json"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def serve(self, jwks: dict[str, list[dict[str, object]]], *, total: int) -> None:
        keys = list(jwks["keys"])
        for n in range(total - len(keys)):
            key = RSAKey.generate_key(2048, private=True).as_dict(private=False)
            keys.append({**key, "kid": f"bench-extra-{n}", "alg": "RS256", "use": "sig"})
        self.document = json.dumps({"keys": keys}).encode()
        self._thread.start()

    def stop(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
        self._server.server_close()


def _fill_redis(prefix: str) -> None:
    """A million revoked jtis, written server-side in chunks."""
    client = redis.Redis.from_url(REDIS_URL)
    script = (
        "for i = ARGV[2], ARGV[3] do redis.call('SET', ARGV[1] .. i, 1, 'EX', 3600) end return 1"
    )
    for start in range(0, MILLION, 100_000):
        client.eval(script, 0, f"{prefix}revoked:jti:bench-", start, start + 99_999)
    client.close()


async def _fill_token_tables(url: str) -> None:
    await pg(
        url,
        "INSERT INTO grants (id, client_id, user_id, grant_type, scopes, audience, created_at, expires_at) "
        "SELECT gen_random_uuid(), (SELECT id FROM oauth_clients LIMIT 1), NULL, 'bench', '[]', 'posts', now(), "
        "now() + interval '1 day' FROM generate_series(1, 1000000)",
        "INSERT INTO refresh_tokens (id, token_hash, grant_id, created_at, expires_at) "
        "SELECT gen_random_uuid(), md5(random()::text) || md5(random()::text), id, now(), now() + interval '1 day' FROM grants WHERE grant_type = 'bench'",
        "INSERT INTO access_tokens (jti, sid, client_id, scopes, audience, kid, created_at, expires_at) "
        "SELECT gen_random_uuid(), gen_random_uuid(), 'bench', '[]', 'posts', 'k', now(), now() + interval '1 hour' FROM generate_series(1, 1000000)",
        "ANALYZE",
    )


def _until_ok(url: str, headers: dict[str, str], timeout: float = 60) -> float:
    """When (monotonic) `url` first answered 200, asking every 10 ms."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, headers=headers, timeout=5).status_code == 200:
                return time.monotonic()
        except httpx.HTTPError:
            pass
        time.sleep(0.01)
    raise RuntimeError(f"{url} never answered 200")


@dataclass(frozen=True)
class FilterRead:
    """How the 1M twin started: seconds from its process starting until `/readyz`
    said ready and until it answered a token, and what it logged of reading its
    revocation filter (in the background: checks ask Redis until it is read)."""

    ready_seconds: float
    first_answer_seconds: float
    entries: int
    seconds: float


class Twins:
    """The three twins, on databases, Redis keys and ports of their own, made and removed
    with the stack's."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        # Twins for the scaling rows, each measured in turns with the service it varies.
        self.auth_1m_db = f"portcullis_bench_auth1m_{stack.suffix}"
        stack.databases.append(self.auth_1m_db)
        self.auth_1m_env = {
            **stack.auth_env,
            "PORTCULLIS_DATABASE_URL": with_database(DATABASE_URL, self.auth_1m_db),
            "PORTCULLIS_REDIS_PREFIX": f"{stack.prefix}auth1m:",
            "PORTCULLIS_PORT": str(free_port()),
        }
        self.revoked_prefix = f"{stack.prefix}revoked1m:"
        posts_1m_env = {
            **stack.posts_env,
            "PORTCULLIS_REDIS_PREFIX": self.revoked_prefix,
            "PORTCULLIS_PORT": str(free_port()),
        }
        self.keys_20 = StaticJWKS()
        stack.closers.append(self.keys_20.stop)
        posts_20_keys_env = {
            **stack.posts_env,
            "PORTCULLIS_JWKS_URL": self.keys_20.url,
            "PORTCULLIS_PORT": str(free_port()),
        }
        self.posts_1m = stack.portcullis_server("posts-1M-revoked", "resource", posts_1m_env)
        self.posts_20_keys = stack.portcullis_server("posts-20-keys", "resource", posts_20_keys_env)
        self.auth_1m = stack.portcullis_server("auth-1M-rows", "auth", self.auth_1m_env)

    def setup(self, path: str, token: str) -> FilterRead:
        """The twins' data written, then each twin started; how the 1M twin started
        (`path` with `token` is its first request)."""
        _fill_redis(self.revoked_prefix)
        client = redis.Redis.from_url(REDIS_URL)
        client.set(f"{self.revoked_prefix}revocations:marker", 1)
        client.close()
        jwks = httpx.get(f"{self.stack.auth_url}/.well-known/jwks.json", timeout=10)
        jwks.raise_for_status()
        self.keys_20.serve(jwks.json(), total=20)
        create_databases(self.auth_1m_db)
        self.stack.cli.install(self.auth_1m_env)
        self.machine = self.stack.cli.create_machine_client(self.auth_1m_env)
        asyncio.run(_fill_token_tables(self.auth_1m_env["PORTCULLIS_DATABASE_URL"]))
        time.sleep(5)  # let Postgres settle after writing three million rows
        # One at a time, so that the 1M list is read with the core to itself.
        started = time.monotonic()
        self.stack.start(self.posts_1m)
        ready = _until_ok(f"{self.posts_1m.url}/readyz", {}) - started
        first = _until_ok(self.posts_1m.url + path, {"Authorization": f"Bearer {token}"})
        synced = self.posts_1m.wait_for_log(SYNCED)
        if int(synced.group(1)) < MILLION:
            raise RuntimeError(f"the 1M twin read only {synced.group(1)} entries")
        read = FilterRead(
            ready_seconds=ready,
            first_answer_seconds=first - started,
            entries=int(synced.group(1)),
            seconds=float(synced.group(2)),
        )
        self.stack.start(self.posts_20_keys)
        self.posts_20_keys.wait_for_log(SYNCED)
        self.stack.start(self.auth_1m)
        return read
