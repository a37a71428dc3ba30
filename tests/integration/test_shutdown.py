"""SIGTERM drains: each service stops taking connections and finishes the requests in
flight, as an orchestrator stopping a pod or a container expects."""

from __future__ import annotations

import base64
import json
import signal
import socket
import time
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import pytest

from tests.integration.processes import ServiceProcess
from tests.integration.stack import WRITE, Stack, running_stack

SETTLE = 0.3
"""Long enough for a process to act on a signal; the test waits on answers, not on it."""


@pytest.fixture
async def stack(
    postgres_url: str,
    service_postgres_url: str,
    redis_url: str,
    template_database: str,
    resource_template_database: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Stack]:
    async with running_stack(
        postgres_url,
        service_postgres_url,
        redis_url,
        template_database,
        resource_template_database,
        tmp_path_factory.mktemp("shutdown"),
    ) as running:
        yield running


def _start_request(service: ServiceProcess, head: str, body: bytes) -> socket.socket:
    """A request whose headers and first half of the body are sent: in flight."""
    parts = urlsplit(service.base_url)
    sock = socket.create_connection((parts.hostname or "", parts.port or 80), timeout=10)
    sock.sendall(
        f"{head}\r\nHost: {parts.netloc}\r\nContent-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n".encode()
        + body[: len(body) // 2]
    )
    return sock


def _finish_request(sock: socket.socket, body: bytes) -> tuple[int, bytes]:
    sock.sendall(body[len(body) // 2 :])
    answer = b""
    while chunk := sock.recv(65536):
        answer += chunk
    sock.close()
    status_line, _, rest = answer.partition(b"\r\n")
    return int(status_line.split()[1]), rest.partition(b"\r\n\r\n")[2]


def _refuses_connections(service: ServiceProcess) -> bool:
    parts = urlsplit(service.base_url)
    try:
        with socket.create_connection((parts.hostname or "", parts.port or 80), timeout=2):
            return False
    except OSError:
        return True


def _terminate_during(
    service: ServiceProcess, sock: socket.socket, body: bytes
) -> tuple[int, bytes]:
    """SIGTERM while `sock`'s request is in flight; its answer, once the process has
    exited and no longer takes connections."""
    process = service.process
    assert process is not None
    time.sleep(SETTLE)  # the request has reached the app
    process.send_signal(signal.SIGTERM)
    time.sleep(SETTLE)
    assert process.poll() is None, "exited with a request in flight"
    assert _refuses_connections(service), "still takes connections while it drains"
    answered = _finish_request(sock, body)
    process.wait(timeout=20)
    assert _refuses_connections(service)
    return answered


def test_the_auth_service_finishes_a_token_request_in_flight(stack: Stack) -> None:
    client = stack.machine_client
    basic = base64.b64encode(f"{client.client_id}:{client.client_secret}".encode()).decode()
    body = b"grant_type=client_credentials"
    sock = _start_request(
        stack.auth,
        f"POST /oauth/token HTTP/1.1\r\nAuthorization: Basic {basic}\r\n"
        "Content-Type: application/x-www-form-urlencoded",
        body,
    )
    status, answer = _terminate_during(stack.auth, sock, body)
    assert status == 200, answer
    assert json.loads(answer)["token_type"] == "Bearer"


def test_the_posts_service_finishes_a_write_in_flight(stack: Stack) -> None:
    token = stack.token("ada@example.com", scope=WRITE)["access_token"]
    body = json.dumps({"title": "written while stopping", "body": "kept"}).encode()
    sock = _start_request(
        stack.posts,
        f"POST /api/posts HTTP/1.1\r\nAuthorization: Bearer {token}\r\n"
        "Content-Type: application/json",
        body,
    )
    status, answer = _terminate_during(stack.posts, sock, body)
    assert status == 201, answer
    assert json.loads(answer)["title"] == "written while stopping"
