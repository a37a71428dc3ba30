"""The stack under load: the auth service, the posts service and its no-token baseline as
production runs them (Postgres, Redis, one uvicorn worker each, production settings), on
databases and a Redis prefix made for this bench; the user and clients the loads log in
with; and the teardown that removes it all."""

from __future__ import annotations

import os
import secrets
import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.databases import create_databases, drop_databases, drop_redis_keys, with_database
from bench.portcullis_cli import Client, PortcullisCli
from bench.servers import Server, free_port
from bench.settings import BIN, DATABASE_URL, POOL_SIZE, REDIS_URL, ROOT


@dataclass(frozen=True)
class Accounts:
    """What the loads log in with: the installed password client, a client-credentials
    client, and the password of the user bench@example.com."""

    password_client: Client
    machine: Client
    password: str


class Stack:
    """Every server and database of one bench: those made here, and those a twin adds
    (`start`, `databases`, `closers`), all removed by `teardown`."""

    def __init__(self) -> None:
        self.suffix = secrets.token_hex(4)
        self.prefix = f"portcullis-bench:{self.suffix}:"
        self.workdir = Path(tempfile.mkdtemp(prefix="portcullis-bench-"))
        self.cli = PortcullisCli(self.workdir)
        self.auth_db = f"portcullis_bench_auth_{self.suffix}"
        self.posts_db = f"portcullis_bench_posts_{self.suffix}"
        self.databases = [self.auth_db, self.posts_db]
        """Dropped at teardown, whether or not they were made."""
        self.servers: list[Server] = []
        self.closers: list[Callable[[], object]] = []
        """In-process servers to stop after the server processes."""
        auth_port, posts_port, baseline_port = free_port(), free_port(), free_port()
        self.auth_url = f"http://127.0.0.1:{auth_port}"
        base = {k: v for k, v in os.environ.items() if not k.startswith("PORTCULLIS_")}
        self.auth_env = {
            **base,
            "PORTCULLIS_ISSUER": self.auth_url,
            "PORTCULLIS_DATABASE_URL": with_database(DATABASE_URL, self.auth_db),
            "PORTCULLIS_REDIS_URL": REDIS_URL,
            "PORTCULLIS_REDIS_PREFIX": self.prefix,
            "PORTCULLIS_SECRET_KEY": secrets.token_hex(32),
            "PORTCULLIS_PORT": str(auth_port),
            # One address and a handful of clients make every request: budgets no run
            # meets, so that what the limiter costs is in the figures and its 429s are not.
            "PORTCULLIS_RATE_LIMIT_PER_IP": "100000000/minute",
            "PORTCULLIS_RATE_LIMIT_PER_CLIENT": "100000000/minute",
            # The password flood comes from many addresses, named in X-Forwarded-For.
            "PORTCULLIS_TRUSTED_PROXIES": "127.0.0.1/32",
        }
        self.posts_env = {
            **base,
            "PORTCULLIS_ISSUER": self.auth_url,
            "PORTCULLIS_AUDIENCE": "posts",
            "PORTCULLIS_JWKS_URL": f"{self.auth_url}/.well-known/jwks.json",
            "PORTCULLIS_DATABASE_URL": with_database(DATABASE_URL, self.posts_db),
            "PORTCULLIS_REDIS_URL": REDIS_URL,
            "PORTCULLIS_REDIS_PREFIX": self.prefix,
            "PORTCULLIS_PORT": str(posts_port),
            "PORTCULLIS_DATABASE_POOL_SIZE": str(POOL_SIZE),
        }
        self.auth = self.portcullis_server("auth", "auth", self.auth_env)
        self.posts = self.portcullis_server("posts", "resource", self.posts_env)
        self.baseline = Server(
            "posts-baseline",
            [str(BIN / "python"), "-m", "bench.baseline_app", str(baseline_port)],
            {**self.posts_env, "PYTHONPATH": str(ROOT)},  # started outside the repository
            f"http://127.0.0.1:{baseline_port}",
            self.workdir / "baseline.log",
        )

    def setup(self) -> Accounts:
        create_databases(self.auth_db, self.posts_db)
        password_client = self.cli.install(self.auth_env)
        password = secrets.token_urlsafe(16)
        self.cli.create_user("bench@example.com", password, self.auth_env)
        machine = self.cli.create_machine_client(self.auth_env)
        for server in (self.auth, self.posts, self.baseline):
            self.start(server)
        return Accounts(password_client=password_client, machine=machine, password=password)

    def posts_served_with(self, server: str, *, workers: int = 1) -> Server:
        """Another posts service on this stack's database, served by `server` (see
        `bench.serve_with`); with several workers, as `portcullis serve resource` runs."""
        environ = {**self.posts_env, "PORTCULLIS_PORT": str(free_port())}
        if workers > 1:
            return Server(
                f"posts-{workers}-workers",
                [str(BIN / "portcullis"), "serve", "resource", "--no-migrate"],
                {**environ, "PORTCULLIS_WORKERS": str(workers)},
                f"http://127.0.0.1:{environ['PORTCULLIS_PORT']}",
                self.workdir / f"posts-{workers}-workers.log",
            )
        return Server(
            f"posts-{server}",
            [
                str(BIN / "python"),
                "-m",
                "bench.serve_with",
                server,
                "portcullis_resource.http.app:serving_app",
                environ["PORTCULLIS_PORT"],
            ],
            {**environ, "PYTHONPATH": str(ROOT)},
            f"http://127.0.0.1:{environ['PORTCULLIS_PORT']}",
            self.workdir / f"posts-{server}.log",
        )

    def portcullis_server(self, name: str, service: str, environ: dict[str, str]) -> Server:
        """`portcullis serve <service>` on `environ`, its log in the bench's directory."""
        return Server(
            name,
            [str(BIN / "portcullis"), "serve", service],
            environ,
            f"http://127.0.0.1:{environ['PORTCULLIS_PORT']}",
            self.workdir / f"{name}.log",
        )

    def start(self, server: Server) -> None:
        self.servers.append(server)
        server.start()

    def stop(self, server: Server) -> None:
        """Stop a server before the others (it leaves the peak-memory figures)."""
        server.stop()
        self.servers.remove(server)

    def teardown(self, *, failed: bool) -> None:
        """Every step runs whatever the others do; a failed run keeps its logs."""
        steps: list[Callable[[], object]] = [
            *(server.stop for server in self.servers),
            *self.closers,
            lambda: drop_redis_keys(self.prefix),
            lambda: drop_databases(*self.databases),
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
