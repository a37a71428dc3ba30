"""PgBouncer in transaction pooling mode in front of the test Postgres.

With PORTCULLIS_TEST_PGBOUNCER=1 the integration suite gives both services a
database URL through this bouncer instead of Postgres's own: each transaction
may then run on another server connection than the one before it, as behind
a production pooler, so anything a service keeps on a session (a prepared
statement, a SET, a lock) shows up as a failure. Debian's `pgbouncer` runs it;
tests that create, drop or read databases still talk to Postgres directly.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from tests.integration.processes import free_port

ENABLED_VARIABLE = "PORTCULLIS_TEST_PGBOUNCER"
BINARY_VARIABLE = "PORTCULLIS_TEST_PGBOUNCER_BINARY"
POOLER_SETTING = {"prepared_statement_cache_size": "0"}
"""What a service's URL needs behind a transaction pooler (docs/architecture.md)."""
SERVER_CONNECTIONS = 5
"""Server connections per database: fewer than either service's pool, so that
one client's transactions do move between server connections."""
STARTUP_TIMEOUT = 10.0


def pgbouncer_wanted() -> bool:
    return os.environ.get(ENABLED_VARIABLE, "") not in {"", "0"}


def pgbouncer_config(server_url: str, port: int, auth_file: Path, version: tuple[int, int]) -> str:
    server = make_url(server_url)
    # From 1.21 the bouncer can keep named prepared statements itself (and from 1.24 it
    # does by default): off, so that the services are tested as a pooler without it
    # meets them.
    prepared = "max_prepared_statements = 0\n" if version >= (1, 21) else ""
    return f"""\
[databases]
* = host={server.host or "127.0.0.1"} port={server.port or 5432}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {auth_file}
pool_mode = transaction
default_pool_size = {SERVER_CONNECTIONS}
max_client_conn = 1000
{prepared}"""


def pgbouncer_version(binary: str) -> tuple[int, int]:
    """`pgbouncer --version`'s major and minor number ("PgBouncer 1.18.0")."""
    printed = subprocess.run(
        [binary, "--version"], capture_output=True, text=True, check=True
    ).stdout
    found = re.search(r"PgBouncer (\d+)\.(\d+)", printed)
    if found is None:
        pytest.fail(f"{binary} --version printed no version: {printed!r}")
    return int(found.group(1)), int(found.group(2))


def auth_file_line(server_url: str) -> str:
    """The user the services log in as; its password (if any) is what the bouncer
    gives Postgres."""
    server = make_url(server_url)
    user = server.username or "postgres"
    password = server.password or ""
    return f'"{user}" "{password}"\n'


@contextmanager
def running_pgbouncer(server_url: str, workdir: Path) -> Iterator[str]:
    """A bouncer in front of the Postgres of `server_url`; yields the same URL
    through it, with the setting the services need there."""
    binary = os.environ.get(BINARY_VARIABLE) or shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
    if not Path(binary).is_file():
        pytest.fail(
            f"{ENABLED_VARIABLE} is set but PgBouncer is not installed: apt-get install "
            f"pgbouncer, or set {BINARY_VARIABLE} to its binary"
        )
    port = free_port()
    auth_file = workdir / "users.txt"
    auth_file.write_text(auth_file_line(server_url))
    config = workdir / "pgbouncer.ini"
    config.write_text(pgbouncer_config(server_url, port, auth_file, pgbouncer_version(binary)))
    # PgBouncer refuses to run as root; it reads its files first, then drops to -u.
    command = [binary, *(["-u", "nobody"] if os.geteuid() == 0 else []), str(config)]
    log_path = workdir / "pgbouncer.log"
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
        )
    try:
        wait_for_port(port, process, log_path)
        url = make_url(server_url).set(host="127.0.0.1", port=port)
        yield url.update_query_dict(POOLER_SETTING).render_as_string(hide_password=False)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_for_port(port: int, process: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"pgbouncer exited with {process.returncode}:\n{log_path.read_text()}")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    pytest.fail(f"pgbouncer did not listen on {port}:\n{log_path.read_text()}")
