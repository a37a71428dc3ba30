"""`make bench`: what a token costs, each figure beside its baseline from the same run.

Starts both services as production runs them (Postgres, Redis, one uvicorn
worker each, production settings; the posts services with pools of 12 database
connections so that six services fit in Postgres's default limit), the servers
pinned to core 0 and the load generators (wrk, and an asyncio driver for refresh
chains) to core 1. The raw signing rate (the service's own signer) and the raw
argon2 rate are measured on core 0 while the servers idle, in turns with the
runs they are the baseline of: the machine's speed drifts over minutes (raw
signing has moved by half within one bench), so each run is divided by the
baseline run just before it and the ratio is the median of those. Two servers
compared with each other (the posts service and its baseline, each scaling twin
and the service it varies) are loaded at once, side by side on the server core,
so that within each run the machine's speed is the same for both. Prints one
table of medians over several runs and writes it as JSON to
bench/results/latest.json. Nothing here asserts an absolute number.

The posts service is measured two ways: every request sending one token, as a
client sends its token until it expires (the verifier's cache answers all but the
first), and every request sending a token not seen before, so that each has its
signature and claims checked. The scaling rows send new tokens, so that every
request looks its key up in the JWKS.

Environment: PORTCULLIS_TEST_DATABASE_URL / PORTCULLIS_TEST_REDIS_URL (else the
local defaults), BENCH_DURATION (seconds per run, default 8), BENCH_RUNS
(default 3), BENCH_CONNECTIONS (default 32, per load). Each scaling row runs a twin
service (a million revoked entries, twenty JWKS keys, a million token rows) side by
side with the service it varies.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import redis
from joserfc import jwt
from joserfc.jwk import RSAKey
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

from portcullis_auth.keys.keyring import LoadedKey
from portcullis_shared.verifier import VERIFIED_CACHE_SIZE

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
DURATION = int(os.environ.get("BENCH_DURATION", "8"))
RUNS = int(os.environ.get("BENCH_RUNS", "3"))
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "32"))
WARM_UP = 2
MACHINE_CLIENT = (
    "client",
    "create",
    "bench-machine",
    "--grant",
    "client_credentials",
    "--scope",
    "read-posts",
    "--json",
)
SYNCED = r"revocation filter synced: (\d+) entries read in ([\d.]+) s"
POOL_SIZE = 12
"""Database connections per posts service (plus half again at peaks): with the two auth
services, at their default of 20 (30 at most), all six must fit in Postgres's default
100 connections."""
DATABASE_URL = os.environ.get(
    "PORTCULLIS_TEST_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("PORTCULLIS_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
SERVER_CORE, LOAD_CORE = 0, 1
NEW_TOKENS = VERIFIED_CACHE_SIZE * 6 // 5
"""Tokens a load sends in turn when each request must bring one the posts service has not
verified yet: more than its verified-token cache keeps."""
MILLION = 1_000_000


def pinned(core: int) -> list[str]:
    return (
        ["taskset", "-c", str(core)]
        if shutil.which("taskset") and (os.cpu_count() or 1) > 1
        else []
    )


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def with_database(url: str, name: str) -> str:
    return url.rsplit("/", 1)[0] + "/" + name


def pg_dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


async def pg(url: str, *statements: str) -> None:
    connection = await asyncpg.connect(pg_dsn(url))
    try:
        for statement in statements:
            await connection.execute(statement)
    finally:
        await connection.close()


@dataclass
class Server:
    name: str
    command: list[str]
    environ: dict[str, str]
    url: str
    log: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [*pinned(SERVER_CORE), *self.command],
                env=self.environ,
                # The bench's own directory: a developer's .env in the repository's
                # root must not change what the services run with.
                cwd=self.log.parent,
                stdout=log,
                stderr=log,
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited; see {self.log}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} did not start; see {self.log}")

    def wait_for_log(self, pattern: str, timeout: float = 120) -> re.Match[str]:
        """The first line of the server's log matching `pattern`, waiting for it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = re.search(pattern, self.log.read_text(errors="replace"))
            if found:
                return found
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} never logged {pattern!r}; see {self.log}")

    def cpu_seconds(self) -> float:
        assert self.process is not None
        if self.process.poll() is not None:
            raise RuntimeError(f"{self.name} exited ({self.process.returncode}); see {self.log}")
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def wait_until_idle(self, timeout: float = 30) -> None:
        """Until the server uses under a tenth of a core: the requests a load left in
        flight (logins queued for the argon2 thread: seconds of work) are done."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            before = self.cpu_seconds()
            time.sleep(0.25)
            if self.cpu_seconds() - before < 0.025:
                return
        raise RuntimeError(f"{self.name} stayed busy after its load; see {self.log}")

    def peak_rss_mib(self) -> float:
        assert self.process is not None
        if self.process.poll() is not None:
            raise RuntimeError(f"{self.name} exited ({self.process.returncode}); see {self.log}")
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        kib = int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1))  # type: ignore[union-attr]
        return round(kib / 1024, 1)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def _ms(value: str) -> float:
    number, unit = re.match(r"([\d.]+)(us|ms|s)", value).groups()  # type: ignore[union-attr]
    return float(number) * _UNITS[unit]


@dataclass
class Figure:
    rps: float
    p50_ms: float | None = None
    p99_ms: float | None = None
    samples: list[float] = field(default_factory=list)
    cpu_share: float | None = None
    """Side by side: the part of a core the server used during the run."""


@dataclass
class Pair:
    """A load's runs beside its baseline's, each taken just after a baseline run (a raw
    rate) or at the same time (side by side): `ratio` is the median of the runs' ratios,
    `load` and `baseline` the median runs."""

    load: Figure
    baseline: Figure
    ratio: float
    ratios: list[float]


def _median(figures: list[Figure]) -> Figure:
    """The run of median rate, carrying every run's rate as its samples."""
    middle = sorted(figures, key=lambda f: f.rps)[len(figures) // 2]
    middle.samples = [round(f.rps, 1) for f in figures]
    return middle


@dataclass
class Tokens:
    """Bearer tokens a load sends one per request, in turn. Each run goes on where the
    last one stopped, so a token comes back only after all the others: with more tokens
    than the verifier keeps (first in, first out), every request has its signature and
    claims checked, none is answered from the cache."""

    values: list[str]
    sent: int = 0


@dataclass(frozen=True)
class Load:
    """One wrk target: a URL, its headers and, for a POST, its form body; with `tokens`,
    each request carries the next of them instead of a fixed Authorization header."""

    url: str
    headers: dict[str, str] = field(default_factory=dict)
    post: str | None = None
    connections: int = CONNECTIONS
    tokens: Tokens | None = None

    @classmethod
    def with_new_tokens(cls, url: str, tokens: list[str]) -> Load:
        return cls(url, {"Authorization": f"Bearer {tokens[0]}"}, tokens=Tokens(tokens))


def wrk_interleaved(*loads: Load) -> list[Figure]:
    """Figures for loads compared with each other, their runs taken in turns, so that
    the machine's drift during a run falls on each alike."""
    runs: list[list[Figure]] = [[] for _ in loads]
    for load in loads:
        _probe(load)
        _wrk_once(load, WARM_UP)
    for run in range(RUNS):
        # Each round in the other order, so that none always runs first.
        order = list(zip(loads, runs, strict=True))
        for load, figures in order if run % 2 == 0 else reversed(order):
            figures.append(_wrk_once(load, DURATION))
    return [_median(figures) for figures in runs]


Served = tuple[Load, Server]
"""A load and the server it goes to."""


def wrk_side_by_side(reference: Served, *others: Served) -> list[Pair]:
    """Each of `others` beside `reference`, all served at once: one wrk each, their servers
    sharing the server core, so that each run sees one machine speed for all (taken in
    turns on a noisy machine, one pair of runs moved by a third). Each run's ratio is a
    load's rate over the reference's in that run; a Pair's ratio is their median. Each
    figure carries the part of the core its server got, to show the sharing was even."""
    served = [reference, *others]
    if len({id(server) for _, server in served}) < len(served):
        raise ValueError("side by side, each load needs a server of its own")
    for load, _ in served:
        _probe(load)
    _wrk_together(served, WARM_UP)
    runs = [_wrk_together(served, DURATION) for _ in range(RUNS)]
    pairs = []
    for index in range(1, len(served)):
        ratios = [run[index].rps / run[0].rps for run in runs]
        pairs.append(
            Pair(
                load=_median([run[index] for run in runs]),
                baseline=_median([run[0] for run in runs]),
                ratio=statistics.median(ratios),
                ratios=[round(ratio, 3) for ratio in ratios],
            )
        )
    return pairs


def _wrk_together(served: list[Served], seconds: int) -> list[Figure]:
    cpu_before = [server.cpu_seconds() for _, server in served]
    started = time.monotonic()
    with ThreadPoolExecutor(len(served)) as pool:
        runs = [pool.submit(_wrk_once, load, seconds) for load, _ in served]
    elapsed = time.monotonic() - started
    figures = [run.result() for run in runs]
    for figure, (_, server), before in zip(figures, served, cpu_before, strict=True):
        figure.cpu_share = round((server.cpu_seconds() - before) / elapsed, 3)
    return figures


def _probe(load: Load) -> None:
    """One request before the load: a figure made of error answers would be worthless."""
    answer = httpx.request(
        "POST" if load.post is not None else "GET",
        load.url,
        headers={**load.headers, "Content-Type": "application/x-www-form-urlencoded"},
        content=load.post,
        timeout=30,
    )
    if answer.status_code >= 300:
        raise RuntimeError(f"{load.url} answered {answer.status_code}: {answer.text[:200]}")


def _wrk_once(load: Load, seconds: int) -> Figure:
    """One wrk run; any error answer or socket error discards the whole bench."""
    # A private directory (mode 0700: the script may hold a password), removed whatever happens.
    with tempfile.TemporaryDirectory(prefix="portcullis-wrk-") as scratch:
        lines = []
        if load.post is not None:
            lines.append(f'wrk.method = "POST"\nwrk.body = {json.dumps(load.post)}\n')
            lines.append('wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"\n')
        for name, value in load.headers.items():
            lines.append(f"wrk.headers[{json.dumps(name)}] = {json.dumps(value)}\n")
        if load.tokens is not None:
            token_file = Path(scratch) / "tokens.txt"
            token_file.write_text("\n".join(load.tokens.values) + "\n")
            lines.append(
                _LUA_ROTATING_AUTHORIZATION % (json.dumps(str(token_file)), load.tokens.sent)
            )
        script = Path(scratch) / "load.lua"
        script.write_text("".join(lines))
        output = subprocess.run(
            [
                *pinned(LOAD_CORE),
                "wrk",
                "-t1",
                f"-c{load.connections}",
                f"-d{seconds}s",
                "--timeout",
                "30s",  # password logins queue for the argon2 thread: seconds, not errors
                "--latency",
                "-s",
                str(script),
                load.url,
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    # Anchored: a "78.50%" in the thread stats must not pass for the 50th percentile.
    if re.search(r"^\s+50%\s+[\d.]+(us|ms|s)\s*$", output, re.MULTILINE) is None:
        raise RuntimeError(f"wrk could not measure {load.url}:\n{output}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"^\s+50%\s+(\S+)", output, re.MULTILINE).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"^\s+99%\s+(\S+)", output, re.MULTILINE).group(1))  # type: ignore[union-attr]
    for failure in ("Non-2xx or 3xx responses", "Socket errors"):
        if failure in output:
            raise RuntimeError(f"errors while loading {load.url}; no figure:\n{output}")
    if load.tokens is not None:
        # Requests still in flight at the end were given their tokens too.
        sent = int(re.search(r"(\d+) requests in", output).group(1))  # type: ignore[union-attr]
        load.tokens.sent += sent + load.connections
    return Figure(rps, p50, p99)


_LUA_ROTATING_AUTHORIZATION = """
local tokens = {}
for line in io.lines(%s) do tokens[#tokens + 1] = "Bearer " .. line end
local sent = %d
request = function()
  sent = sent + 1
  return wrk.format(nil, nil, {["Authorization"] = tokens[(sent - 1) %% #tokens + 1]})
end
"""


def raw_rate(operation: Callable[[], object], seconds: float = 3.0, runs: int = RUNS) -> Figure:
    """Median ops/s of an in-process loop, on the servers' core while they idle: the rate
    a server could reach if the operation were all it did."""
    samples = []
    on_server_core = hasattr(os, "sched_setaffinity") and bool(pinned(SERVER_CORE))
    if on_server_core:
        os.sched_setaffinity(0, {SERVER_CORE})
    try:
        for _ in range(runs):
            count, start = 0, time.perf_counter()
            while time.perf_counter() - start < seconds:
                operation()
                count += 1
            samples.append(count / (time.perf_counter() - start))
    finally:
        if on_server_core:
            os.sched_setaffinity(0, {LOAD_CORE})
    return Figure(statistics.median(samples), samples=[round(s, 1) for s in samples])


def paired(
    baseline: Callable[[], object], run_load: Callable[[int], Figure], server: Server
) -> Pair:
    """RUNS runs of a load on `server`, each just after a run of its raw baseline, after
    a short unmeasured load run (pools filled, caches warm). Each raw run waits until
    the server has finished what the load before it left in flight."""
    run_load(WARM_UP)
    baselines, loads = [], []
    for _ in range(RUNS):
        server.wait_until_idle()
        baselines.append(raw_rate(baseline, runs=1))
        loads.append(run_load(DURATION))
    ratios = [load.rps / base.rps for base, load in zip(baselines, loads, strict=True)]
    return Pair(
        _median(loads), _median(baselines), statistics.median(ratios), [round(r, 3) for r in ratios]
    )


class RefreshChain:
    """One keep-alive HTTP/1.1 connection rotating one refresh token, written by hand:
    httpx spent more CPU per request than the auth service does, so the load core,
    not the server, set the pace."""

    def __init__(self, url: str, auth: tuple[str, str], token: str) -> None:
        parts = httpx.URL(url)
        self.host, self.port, self.path = parts.host, parts.port or 80, parts.raw_path.decode()
        self.basic = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        self.token = token
        self.rotations = 0

    async def run_until(self, stop: float) -> None:
        reader, writer = await asyncio.open_connection(self.host, self.port)
        try:
            while time.monotonic() < stop:
                body = f"grant_type=refresh_token&refresh_token={self.token}".encode()
                writer.write(
                    f"POST {self.path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
                    f"Authorization: Basic {self.basic}\r\n"
                    "Content-Type: application/x-www-form-urlencoded\r\n"
                    f"Content-Length: {len(body)}\r\n\r\n".encode()
                    + body
                )
                head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
                status = int(head.split(" ", 2)[1])
                length = int(re.search(r"(?i)content-length:\s*(\d+)", head).group(1))  # type: ignore[union-attr]
                answer = await reader.readexactly(length)
                if status != 200:
                    raise RuntimeError(f"a refresh chain broke: {status} {answer[:200]!r}")
                self.token = json.loads(answer)["refresh_token"]
                self.rotations += 1
        finally:
            writer.close()


class RefreshChains:
    """Each chain rotates its own refresh token as fast as the server answers; any error
    answer discards the bench."""

    def __init__(self, token_url: str, auth: tuple[str, str], first_tokens: list[str]) -> None:
        self.chains = [RefreshChain(token_url, auth, token) for token in first_tokens]

    def run(self, seconds: int) -> Figure:
        return asyncio.run(self._run(seconds))

    async def _run(self, seconds: int) -> Figure:
        before = sum(chain.rotations for chain in self.chains)
        start = time.monotonic()
        await asyncio.gather(*(chain.run_until(start + seconds) for chain in self.chains))
        return Figure(
            (sum(chain.rotations for chain in self.chains) - before) / (time.monotonic() - start)
        )


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

            def log_message(self, *_: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/jwks.json"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def serve(self, jwks: dict[str, Any], *, total: int) -> None:
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


class Bench:
    def __init__(self) -> None:
        suffix = secrets.token_hex(4)
        self.auth_db = f"portcullis_bench_auth_{suffix}"
        self.posts_db = f"portcullis_bench_posts_{suffix}"
        self.prefix = f"portcullis-bench:{suffix}:"
        self.workdir = Path(tempfile.mkdtemp(prefix="portcullis-bench-"))
        self.auth_port, self.posts_port, self.baseline_port = free_port(), free_port(), free_port()
        self.auth_url = f"http://127.0.0.1:{self.auth_port}"
        base = {k: v for k, v in os.environ.items() if not k.startswith("PORTCULLIS_")}
        self.auth_env = {
            **base,
            "PORTCULLIS_ISSUER": self.auth_url,
            "PORTCULLIS_DATABASE_URL": with_database(DATABASE_URL, self.auth_db),
            "PORTCULLIS_REDIS_URL": REDIS_URL,
            "PORTCULLIS_REDIS_PREFIX": self.prefix,
            "PORTCULLIS_SECRET_KEY": secrets.token_hex(32),
            "PORTCULLIS_PORT": str(self.auth_port),
        }
        self.posts_env = {
            **base,
            "PORTCULLIS_ISSUER": self.auth_url,
            "PORTCULLIS_AUDIENCE": "posts",
            "PORTCULLIS_JWKS_URL": f"{self.auth_url}/.well-known/jwks.json",
            "PORTCULLIS_DATABASE_URL": with_database(DATABASE_URL, self.posts_db),
            "PORTCULLIS_REDIS_URL": REDIS_URL,
            "PORTCULLIS_REDIS_PREFIX": self.prefix,
            "PORTCULLIS_PORT": str(self.posts_port),
            "PORTCULLIS_DATABASE_POOL_SIZE": str(POOL_SIZE),
        }
        self.servers: list[Server] = []
        self.results: dict[str, Any] = {}
        # Twins for the scaling rows, each measured in turns with the service it varies.
        self.auth_1m_db = f"portcullis_bench_auth1m_{suffix}"
        self.auth_1m_port = free_port()
        self.auth_1m_env = {
            **self.auth_env,
            "PORTCULLIS_DATABASE_URL": with_database(DATABASE_URL, self.auth_1m_db),
            "PORTCULLIS_REDIS_PREFIX": f"{self.prefix}auth1m:",
            "PORTCULLIS_PORT": str(self.auth_1m_port),
        }
        self.revoked_prefix = f"{self.prefix}revoked1m:"
        self.posts_1m_env = {
            **self.posts_env,
            "PORTCULLIS_REDIS_PREFIX": self.revoked_prefix,
            "PORTCULLIS_PORT": str(free_port()),
        }
        self.keys_20 = StaticJWKS()
        self.posts_20_keys_env = {
            **self.posts_env,
            "PORTCULLIS_JWKS_URL": self.keys_20.url,
            "PORTCULLIS_PORT": str(free_port()),
        }

    def cli(self, *args: str, stdin: str | None = None, env: dict[str, str] | None = None) -> Any:
        done = subprocess.run(
            [str(BIN / "portcullis"), *args],
            env=env or self.auth_env,
            cwd=self.workdir,
            input=stdin,
            capture_output=True,
            text=True,
            check=True,
        )
        return json.loads(done.stdout) if "--json" in args else done.stdout

    def setup(self) -> None:
        asyncio.run(
            pg(
                DATABASE_URL,
                f'CREATE DATABASE "{self.auth_db}"',
                f'CREATE DATABASE "{self.posts_db}"',
            )
        )
        installed = self.cli("install", "--json")
        self.password_client = (
            installed["password_client"]["client_id"],
            installed["password_client"]["client_secret"],
        )
        self.password = secrets.token_urlsafe(16)
        self.cli(
            "user",
            "create",
            "bench@example.com",
            "--password-stdin",
            "--json",
            stdin=self.password + "\n",
        )
        machine = self.cli(*MACHINE_CLIENT)
        self.machine = (machine["client_id"], machine["client_secret"])
        self.auth = Server(
            "auth",
            [str(BIN / "portcullis"), "serve", "auth"],
            self.auth_env,
            self.auth_url,
            self.workdir / "auth.log",
        )
        self.posts = Server(
            "posts",
            [str(BIN / "portcullis"), "serve", "resource"],
            self.posts_env,
            f"http://127.0.0.1:{self.posts_port}",
            self.workdir / "posts.log",
        )
        self.baseline = Server(
            "posts-baseline",
            [str(BIN / "python"), "-m", "bench.apps", str(self.baseline_port)],
            {**self.posts_env, "PYTHONPATH": str(ROOT)},  # started outside the repository
            f"http://127.0.0.1:{self.baseline_port}",
            self.workdir / "baseline.log",
        )
        self.servers = [self.auth, self.posts, self.baseline]
        for server in self.servers:
            server.start()

    def setup_twins(self) -> None:
        """A posts service reading a list of a million revoked entries, one reading a JWKS
        of twenty keys, and an auth service over a million rows in each token table."""
        _fill_redis(self.revoked_prefix)
        client = redis.Redis.from_url(REDIS_URL)
        client.set(f"{self.revoked_prefix}revocations:marker", 1)
        client.close()
        jwks = httpx.get(f"{self.auth_url}/.well-known/jwks.json", timeout=10)
        jwks.raise_for_status()
        self.keys_20.serve(jwks.json(), total=20)
        asyncio.run(pg(DATABASE_URL, f'CREATE DATABASE "{self.auth_1m_db}"'))
        self.cli("install", "--json", env=self.auth_1m_env)
        machine = self.cli(*MACHINE_CLIENT, env=self.auth_1m_env)
        self.machine_1m = (machine["client_id"], machine["client_secret"])
        asyncio.run(_fill_token_tables(self.auth_1m_env["PORTCULLIS_DATABASE_URL"]))
        time.sleep(5)  # let Postgres settle after writing three million rows
        # One at a time, so that the 1M list is read with the core to itself.
        self.posts_1m = self.twin("posts-1M-revoked", "resource", self.posts_1m_env)
        synced = self.posts_1m.wait_for_log(SYNCED)
        if int(synced.group(1)) < MILLION:
            raise RuntimeError(f"the 1M twin read only {synced.group(1)} entries")
        self.results["revocation_filter_resync_s"] = float(synced.group(2))
        self.results["revocation_filter_entries"] = int(synced.group(1))
        self.posts_20_keys = self.twin("posts-20-keys", "resource", self.posts_20_keys_env)
        self.posts_20_keys.wait_for_log(SYNCED)
        self.auth_1m = self.twin("auth-1M-rows", "auth", self.auth_1m_env)

    def twin(self, name: str, service: str, environ: dict[str, str]) -> Server:
        server = Server(
            name,
            [str(BIN / "portcullis"), "serve", service],
            environ,
            f"http://127.0.0.1:{environ['PORTCULLIS_PORT']}",
            self.workdir / f"{name}.log",
        )
        self.servers.append(server)
        server.start()
        return server

    def teardown(self, *, failed: bool) -> None:
        """Every step runs whatever the others do; a failed run keeps its logs."""
        steps: list[Callable[[], object]] = [
            *(server.stop for server in self.servers),
            self.keys_20.stop,
            self._drop_redis_keys,
            lambda: asyncio.run(
                pg(
                    DATABASE_URL,
                    *(
                        f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'
                        for name in (self.auth_db, self.posts_db, self.auth_1m_db)
                    ),
                )
            ),
        ]
        for step in steps:
            try:
                step()
            except Exception as exc:  # noqa: BLE001 - clean up what can be cleaned up
                print(f"teardown: {type(exc).__name__}: {exc}", file=sys.stderr)
        if failed:
            print(f"logs kept in {self.workdir}", file=sys.stderr)
        else:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def _drop_redis_keys(self) -> None:
        client = redis.Redis.from_url(REDIS_URL)
        try:
            for keys in _chunks(client.scan_iter(match=f"{self.prefix}*", count=10_000), 10_000):
                client.delete(*keys)
        finally:
            client.close()

    def user_token(self, scope: str = "read-posts write-posts") -> dict[str, Any]:
        answer = httpx.post(
            f"{self.auth_url}/oauth/token",
            auth=self.password_client,
            timeout=30,
            data={
                "grant_type": "password",
                "username": "bench@example.com",
                "password": self.password,
                "scope": scope,
            },
        )
        answer.raise_for_status()
        return dict(answer.json())

    def new_tokens(self) -> list[str]:
        """NEW_TOKENS client-credentials tokens that read posts, fresh from the auth service
        (each lives ACCESS_TOKEN_TTL, 15 minutes: minted just before the runs that use them)."""
        return asyncio.run(self._mint(NEW_TOKENS))

    async def _mint(self, count: int) -> list[str]:
        tokens: list[str] = []
        async with httpx.AsyncClient(auth=self.machine, timeout=30) as client:

            async def mint_until_enough() -> None:
                while len(tokens) < count:
                    answer = await client.post(
                        f"{self.auth_url}/oauth/token",
                        data={"grant_type": "client_credentials", "scope": "read-posts"},
                    )
                    answer.raise_for_status()
                    tokens.append(answer.json()["access_token"])

            await asyncio.gather(*(mint_until_enough() for _ in range(16)))
        return tokens[:count]

    def posts_path_and_headers(self) -> tuple[str, dict[str, str]]:
        token = self.user_token()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        post = httpx.post(
            f"{self.posts.url}/api/posts",
            json={"title": "bench", "body": "x" * 200},
            headers=headers,
            timeout=10,
        )
        post.raise_for_status()
        return f"/api/posts/{post.json()['id']}", headers

    def run(self) -> None:
        # Raw rates first, on the servers' core, while the servers idle (and before the
        # twins' million-row fills).
        key = RSAKey.generate_key(2048, private=True)
        claims = {
            "iss": "x",
            "sub": str(uuid.uuid4()),
            "aud": "posts",
            "exp": 2**31,
            "iat": 0,
            "jti": "j",
            "client_id": "c",
            "scope": "read-posts",
            "sid": "s",
        }
        # The denominator is the service's own signer (a header built once per key,
        # joserfc's RSA signature); joserfc's whole `jwt.encode` is slower, shown beside it.
        signer = LoadedKey(
            kid="k",
            algorithm="RS256",
            activates_at=datetime.now(UTC),
            public_jwk=key.as_dict(private=False),
            private_key=key,
        )
        self.results["raw_signing_RS256"] = raw_rate(lambda: signer.sign_access_token(claims))
        header = {"alg": "RS256", "kid": "k", "typ": "at+jwt"}
        self.results["raw_signing_RS256_jwt_encode"] = raw_rate(
            lambda: jwt.encode(header, claims, key, algorithms=["RS256"])
        )

        path, headers = self.posts_path_and_headers()
        # A client sends its token until it expires: the first request verifies it, the
        # rest find it in the verifier's cache. With a new token each request, every
        # request verifies one. Each alone, in turns (rates, latencies), then side by side
        # (the ratios).
        repeated = Load(self.posts.url + path, headers=headers)
        new_tokens = Load.with_new_tokens(self.posts.url + path, self.new_tokens())
        baseline = Load(self.baseline.url + path)
        (
            self.results["posts_authenticated"],
            self.results["posts_new_tokens"],
            self.results["posts_baseline"],
        ) = wrk_interleaved(repeated, new_tokens, baseline)
        # One pair at a time: the two token loads go to one server.
        for name, load in (("posts_authenticated", repeated), ("posts_new_tokens", new_tokens)):
            (self.results[f"{name}_side_by_side"],) = wrk_side_by_side(
                (baseline, self.baseline), (load, self.posts)
            )
        basic = (
            "Basic " + base64.b64encode(f"{self.machine[0]}:{self.machine[1]}".encode()).decode()
        )
        client_credentials = Load(
            f"{self.auth_url}/oauth/token",
            headers={"Authorization": basic},
            post="grant_type=client_credentials",
        )
        _probe(client_credentials)
        self.results["client_credentials"] = paired(
            lambda: signer.sign_access_token(claims),
            lambda seconds: _wrk_once(client_credentials, seconds),
            self.auth,
        )
        password_basic = (
            "Basic "
            + base64.b64encode(
                f"{self.password_client[0]}:{self.password_client[1]}".encode()
            ).decode()
        )
        hasher = PasswordHash((Argon2Hasher(),))
        stored = hasher.hash("correct horse")
        password = Load(
            f"{self.auth_url}/oauth/token",
            headers={"Authorization": password_basic},
            # Fewer than the login throttle's 5: each login counts as a failure until
            # its password is checked.
            connections=4,
            post=f"grant_type=password&username=bench%40example.com&password={self.password}&scope=read-posts",
        )
        _probe(password)
        self.results["password_grant"] = paired(
            lambda: hasher.verify("correct horse", stored),
            lambda seconds: _wrk_once(password, seconds),
            self.auth,
        )
        first = [self.user_token("read-posts")["refresh_token"] for _ in range(CONNECTIONS)]
        chains = RefreshChains(f"{self.auth_url}/oauth/token", self.password_client, first)
        self.results["refresh_rotation"] = paired(
            lambda: signer.sign_access_token(claims), chains.run, self.auth
        )

        # Scaling: each twin in turns with the service it varies (the post is in their
        # shared database), a new token each request, so that every request looks its
        # key up and checks its signature.
        self.setup_twins()
        tokens = self.new_tokens()
        (
            self.results["posts_authenticated_1M_revoked"],
            self.results["posts_authenticated_20_keys"],
        ) = wrk_side_by_side(
            *(
                (Load.with_new_tokens(server.url + path, tokens), server)
                for server in (self.posts, self.posts_1m, self.posts_20_keys)
            )
        )
        basic_1m = (
            "Basic "
            + base64.b64encode(f"{self.machine_1m[0]}:{self.machine_1m[1]}".encode()).decode()
        )
        (self.results["client_credentials_1M_rows"],) = wrk_side_by_side(
            (
                Load(
                    f"{self.auth_url}/oauth/token",
                    headers={"Authorization": basic},
                    post="grant_type=client_credentials",
                ),
                self.auth,
            ),
            (
                Load(
                    f"{self.auth_1m.url}/oauth/token",
                    headers={"Authorization": basic_1m},
                    post="grant_type=client_credentials",
                ),
                self.auth_1m,
            ),
        )
        self.results["peak_rss_mib"] = {
            server.name: server.peak_rss_mib() for server in self.servers
        }


def _chunks(iterable: Any, size: int) -> Any:
    chunk: list[Any] = []
    for item in iterable:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


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


def report(results: dict[str, Any]) -> dict[str, Any]:
    def rps(name: str) -> float:
        return float(results[name].rps)

    rows: list[tuple[str, str, str]] = []
    base_posts = results["posts_baseline"]

    def latency(label: str, figure: Figure) -> tuple[str, str, str]:
        return (
            f"  latency p50 / p99, {label}",
            f"{figure.p50_ms:.2f} / {figure.p99_ms:.2f} ms",
            "",
        )

    def pair(name: str, label: str, target: str, digits: int) -> tuple[str, str, str]:
        figure: Pair = results[name]
        measured = f"{figure.load.rps:.{digits}f} / {figure.baseline.rps:.{digits}f} per s"
        if figure.load.cpu_share is not None and figure.baseline.cpu_share is not None:
            measured += f" (cores {figure.load.cpu_share:.2f} / {figure.baseline.cpu_share:.2f})"
        return (label, measured, f"{figure.ratio:.2f}" + (f" (target {target})" if target else ""))

    for name, label, target, latency_label in (
        ("posts_authenticated", "posts GET /api/posts/{id}, token / no token", ">= 0.90", "token"),
        ("posts_new_tokens", "posts, a new token each request / no token", "", "new tokens"),
    ):
        posts = results[name]
        rows.append(pair(f"{name}_side_by_side", label, target, 0))
        rows.append(
            (
                "  in turns, each alone",
                f"{posts.rps:.0f} / {base_posts.rps:.0f} per s",
                f"{posts.rps / base_posts.rps:.2f}",
            )
        )
        rows.append(latency(latency_label, posts))
    rows.append(latency("no token", base_posts))

    sign = rps("raw_signing_RS256")
    rows.append(pair("client_credentials", "client credentials / raw RS256 signing", ">= 0.50", 0))
    rows.append(pair("refresh_rotation", "refresh rotations / raw RS256 signing", ">= 0.40", 0))
    rows.append(
        (
            "  raw RS256: the service's signer / jwt.encode",
            f"{sign:.0f} / {rps('raw_signing_RS256_jwt_encode'):.0f} per s",
            "",
        )
    )
    rows.append(pair("password_grant", "password grant / raw argon2 verify", ">= 0.90", 1))
    for name, label in (
        ("posts_authenticated_1M_revoked", "posts, 1M revoked / none (new tokens)"),
        ("posts_authenticated_20_keys", "posts, 20 JWKS keys / 1 (new tokens)"),
        ("client_credentials_1M_rows", "client credentials, 1M token rows / none"),
    ):
        rows.append(pair(name, label, "0.90-1.10", 0))
    rows.append(
        (
            "  posts: revocation filter read at start",
            f"{results['revocation_filter_entries']} entries in "
            f"{results['revocation_filter_resync_s']:.1f} s",
            "",
        )
    )
    for name, mib in results["peak_rss_mib"].items():
        rows.append((f"peak RSS {name}", f"{mib} MiB", "(target < 200)"))
    width = max(len(r[0]) for r in rows)
    measured_width = max(len(r[1]) for r in rows)
    print(f"\n{'figure':{width}}  {'measured (median runs)':{measured_width}}  ratio")
    for figure, measured, ratio in rows:
        print(f"{figure:{width}}  {measured:{measured_width}}  {ratio}")
    print(
        "\nA ratio to a raw rate is the median of its runs' ratios, each run beside the raw run"
        "\njust before it. A ratio of two servers is the median of runs in which both served at"
        "\nonce, sharing the server core (rates then are shares of the core, and the part of"
        "\nthe core each server got is shown); the posts rows also show the rates, latencies"
        "\nand ratio of median runs taken alone, in turns."
    )
    return {
        "rows": [{"figure": f, "measured": m, "ratio": r} for f, m, r in rows],
        "raw": {k: (asdict(v) if isinstance(v, Figure | Pair) else v) for k, v in results.items()},
        "settings": {
            "duration_s": DURATION,
            "runs": RUNS,
            "connections": CONNECTIONS,
            "posts_database_pool_size": POOL_SIZE,
        },
    }


def main() -> None:
    if shutil.which("wrk") is None:
        raise SystemExit("bench needs wrk (Debian: apt-get install wrk)")
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {LOAD_CORE})
    bench = Bench()
    failed = True
    try:
        bench.setup()
        bench.run()
        failed = False
    finally:
        bench.teardown(failed=failed)
    document = report(bench.results)
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "latest.json").write_text(json.dumps(document, indent=2))
    print(f"\nwritten to {out / 'latest.json'}")


if __name__ == "__main__":
    main()
