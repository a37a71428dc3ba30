"""Client addresses and password checks behind a load balancer, between real processes.

The posts service stands behind a load balancer (this test, on 127.0.0.1) and
trusts it; the auth service trusts the posts service's login proxy. Each
caller is then throttled by its own address, and an address nobody vouches for
cannot be replaced by a header.
"""

from __future__ import annotations

import base64
import socket
import time
from urllib.parse import urlsplit

import httpx
import pytest

from tests.integration.stack import Stack

ADA = "ada@example.com"
LOAD_BALANCER = "127.0.0.1"
STRANGER = "127.0.0.2"
"""Another loopback address: a local caller that is no trusted proxy."""


@pytest.fixture(scope="module")
def auth_settings() -> dict[str, str]:
    return {"PORTCULLIS_TRUSTED_PROXIES": "127.0.0.1/32", "PORTCULLIS_PASSWORD_QUEUE": "64"}


@pytest.fixture(scope="module")
def posts_settings() -> dict[str, str]:
    return {"PORTCULLIS_TRUSTED_PROXIES": f"{LOAD_BALANCER}/32"}


def proxy_login(
    stack: Stack, password: str, *, forwarded_for: str | None = None, source: str = LOAD_BALANCER
) -> httpx.Response:
    headers = {} if forwarded_for is None else {"X-Forwarded-For": forwarded_for}
    transport = httpx.HTTPTransport(local_address=source)
    with httpx.Client(transport=transport, timeout=30) as client:
        return client.post(
            f"{stack.posts_url}/api/oauth/password/token",
            json={"username": ADA, "password": password},
            headers=headers,
        )


def test_the_proxy_forwards_the_address_its_trusted_proxies_vouch_for(stack: Stack) -> None:
    for _ in range(5):
        assert proxy_login(stack, "a guess", forwarded_for="203.0.113.5").status_code == 400
    locked = proxy_login(stack, stack.passwords[ADA], forwarded_for="203.0.113.5")
    assert locked.status_code == 429, locked.text
    # The real user, behind the same load balancer, is not locked out by the guesser.
    other = proxy_login(stack, stack.passwords[ADA], forwarded_for="203.0.113.6")
    assert other.status_code == 200, other.text


def test_a_caller_nobody_vouches_for_cannot_rotate_its_address(stack: Stack) -> None:
    for n in range(5):
        guess = proxy_login(stack, "a guess", forwarded_for=f"198.51.100.{n}", source=STRANGER)
        assert guess.status_code == 400, guess.text
    refused = proxy_login(stack, "a guess", forwarded_for="198.51.100.200", source=STRANGER)
    assert refused.status_code == 429, refused.text


def events_logged(stack: Stack, event: str) -> int:
    return stack.auth.output().count(f"event={event} ")


def until_logged(stack: Stack, event: str, at_least: int) -> int:
    """The count of `event` in the auth service's log once it reaches `at_least` (the log
    is written in batches), or as it stands after 10 s."""
    deadline = time.monotonic() + 10
    while (logged := events_logged(stack, event)) < at_least and time.monotonic() < deadline:
        time.sleep(0.05)
    return logged


def abandon_together(host: str, port: int, requests: list[bytes]) -> None:
    """Send whole requests on connections of their own, give the server a moment to queue
    them all (one hashes, the rest wait their turn; the moment is about one hash long),
    then hang up on every one before any answer."""
    connections = [socket.create_connection((host, port)) for _ in requests]
    try:
        for connection, request in zip(connections, requests, strict=True):
            connection.sendall(request)
        # Wall time: the queue is inside another process, and the moment must stay short.
        time.sleep(0.15)
    finally:
        for connection in connections:
            connection.close()


def form_request(stack: Stack, n: int, *, then: bytes = b"") -> bytes:
    client = stack.password_client
    credentials = base64.b64encode(f"{client.client_id}:{client.client_secret}".encode())
    body = f"grant_type=password&username=user{n}%40example.com&password=guess".encode()
    return (
        b"POST /oauth/token HTTP/1.1\r\nHost: auth\r\n"
        + f"X-Forwarded-For: 198.18.{n // 250}.{n % 250}\r\n".encode()
        + b"Content-Type: application/x-www-form-urlencoded\r\n"
        + f"Content-Length: {len(body)}\r\n".encode()
        + b"Authorization: Basic "
        + credentials
        + b"\r\n\r\n"
        + body
        + then
    )


def proxy_request(n: int) -> bytes:
    body = f'{{"username": "user{n}@example.com", "password": "guess"}}'.encode()
    return (
        b"POST /api/oauth/password/token HTTP/1.1\r\nHost: posts\r\n"
        + f"X-Forwarded-For: 198.19.{n // 250}.{n % 250}\r\n".encode()
        + b"Content-Type: application/json\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )


PIPELINED_HANG_UP_UNSEEN = pytest.mark.xfail(
    strict=True,
    reason="the server notices a hang-up only when it reads the connection again, which it "
    "does not while a pipelined request waits behind the login (docs/security.md)",
)


@pytest.mark.parametrize(
    "way",
    ["direct", "through-the-proxy", pytest.param("pipelined", marks=PIPELINED_HANG_UP_UNSEEN)],
)
def test_abandoned_logins_are_dropped_unhashed(stack: Stack, way: str) -> None:
    """Password requests whose callers hang up leave the hashing queue at once, whichever
    way the requests came: only those whose turn came while their callers waited are
    hashed."""
    target = urlsplit(stack.posts_url if way == "through-the-proxy" else stack.auth_url)
    assert target.hostname is not None
    assert target.port is not None
    failed_before = until_logged(stack, "login_failed", 0)
    dropped_before = until_logged(stack, "login_abandoned", 0)
    abandoned = 20
    if way == "through-the-proxy":
        requests = [proxy_request(n) for n in range(abandoned)]
    elif way == "pipelined":
        # A second request queued behind each login: the server must still tell the
        # login that its caller has gone.
        pipelined = b"GET /healthz HTTP/1.1\r\nHost: auth\r\n\r\n"
        requests = [form_request(stack, n, then=pipelined) for n in range(abandoned)]
    else:
        requests = [form_request(stack, n) for n in range(abandoned)]
    abandon_together(target.hostname, target.port, requests)

    # Those hashed while their callers waited, about two, are all: the rest are dropped.
    dropped = until_logged(stack, "login_abandoned", dropped_before + abandoned - 4)
    hashed = events_logged(stack, "login_failed") - failed_before
    assert hashed <= 4, f"{hashed} abandoned logins were hashed"
    assert dropped - dropped_before >= abandoned - 4, f"{dropped - dropped_before} dropped"
