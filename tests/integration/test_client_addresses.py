"""Client addresses and password checks behind a load balancer, between real processes.

The posts service stands behind a load balancer (this test, on 127.0.0.1) and
trusts it; the auth service trusts the posts service's login proxy. Each
caller is then throttled by its own address, and an address nobody vouches for
cannot be replaced by a header.
"""

from __future__ import annotations

import base64
import socket
import statistics
import time
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import httpx
import pytest

from tests.integration.stack import Stack, running_stack

ADA = "ada@example.com"
LOAD_BALANCER = "127.0.0.1"
STRANGER = "127.0.0.2"
"""Another loopback address: a local caller that is no trusted proxy."""


@pytest.fixture(scope="module")
async def stack(
    postgres_url: str,
    redis_url: str,
    template_database: str,
    resource_template_database: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Stack]:
    async with running_stack(
        postgres_url,
        redis_url,
        template_database,
        resource_template_database,
        tmp_path_factory.mktemp("addresses"),
        auth_settings={
            "PORTCULLIS_TRUSTED_PROXIES": "127.0.0.1/32",
            "PORTCULLIS_PASSWORD_QUEUE": "64",
        },
        posts_settings={"PORTCULLIS_TRUSTED_PROXIES": f"{LOAD_BALANCER}/32"},
    ) as running:
        yield running


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


def test_abandoned_logins_are_not_hashed(stack: Stack) -> None:
    """Password requests whose callers hang up leave the hashing queue at once: a real
    login after a flood of them waits for no more than the hash already running."""
    client = stack.password_client

    def timed_login(address: str) -> float:
        started = time.perf_counter()
        answer = httpx.post(
            f"{stack.auth_url}/oauth/token",
            data={
                "grant_type": "password",
                "username": "bob@example.com",
                "password": stack.passwords["bob@example.com"],
            },
            auth=(client.client_id, client.client_secret),
            headers={"X-Forwarded-For": address},
            timeout=60,
        )
        assert answer.status_code == 200, answer.text
        return time.perf_counter() - started

    alone = statistics.median(timed_login(f"192.0.2.{n}") for n in range(3))
    host, port = urlsplit(stack.auth_url).hostname, urlsplit(stack.auth_url).port
    assert host is not None
    assert port is not None
    credentials = (
        "Basic " + base64.b64encode(f"{client.client_id}:{client.client_secret}".encode()).decode()
    )
    abandoned = 30
    for n in range(abandoned):
        body = f"grant_type=password&username=user{n}%40example.com&password=guess".encode()
        request = (
            b"POST /oauth/token HTTP/1.1\r\n"
            + f"Host: {host}:{port}\r\n".encode()
            + f"X-Forwarded-For: 198.18.0.{n}\r\n".encode()
            + b"Content-Type: application/x-www-form-urlencoded\r\n"
            + f"Content-Length: {len(body)}\r\n".encode()
            + f"Authorization: {credentials}\r\n\r\n".encode()
            + body
        )
        with socket.create_connection((host, port)) as connection:
            connection.sendall(request)
    after = timed_login("192.0.2.200")
    # Had the abandoned checks run, the login would have waited for about 30 hashes.
    assert after < 6 * alone, f"login took {after:.2f} s after the flood, {alone:.2f} s alone"
