"""Redis over TLS with an ACL user (`rediss://user:password@host:port/db`), as managed
Redis services offer it: both services, every Redis use (the revocation list, its
feed, the login throttle, the key check at start), with the default user turned off."""

from __future__ import annotations

import datetime
import ipaddress
import secrets
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.integration.processes import free_port
from tests.integration.stack import READ, Stack, running_stack
from tests.integration.test_revocation import assert_works, oauth, refused_within

USER, PASSWORD = "portcullis", secrets.token_urlsafe(24)


def _write_pem(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _certificates(folder: Path) -> tuple[Path, Path, Path]:
    """A CA, and a certificate it signed for 127.0.0.1: (CA, certificate, key)."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "portcullis test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    server = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    return (
        _write_pem(folder / "ca.pem", ca.public_bytes(pem)),
        _write_pem(folder / "redis.pem", server.public_bytes(pem)),
        _write_pem(
            folder / "redis.key",
            key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
        ),
    )


@pytest.fixture(scope="module")
def tls_redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Redis of its own, on TLS only, whose only user is an ACL user with a password,
    limited to the stack's keys and channels and to the commands the README lists."""
    folder = tmp_path_factory.mktemp("redis-tls")
    ca, certificate, key = _certificates(folder)
    port = free_port()
    server = subprocess.Popen(
        [
            "redis-server", "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1",
            "--tls-cert-file", str(certificate), "--tls-key-file", str(key),
            "--tls-ca-cert-file", str(ca), "--tls-auth-clients", "no",
            "--save", "", "--appendonly", "no", "--maxmemory-policy", "noeviction",
            "--dir", str(folder),
            "--user", "default", "off",
            # As narrow as the README says a deployment may make it: the tests' prefix.
            "--user", USER, "on", f">{PASSWORD}", "~portcullis-test:*", "&portcullis-test:*",
            "+@all", "-@dangerous", "+info",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"rediss://{USER}:{PASSWORD}@127.0.0.1:{port}/0?ssl_ca_certs={ca}"
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                redis.Redis.from_url(url).ping()
                break
            except redis.ConnectionError:
                assert server.poll() is None, "redis-server with TLS did not start"
                assert time.monotonic() < deadline, "redis-server with TLS never answered"
                time.sleep(0.1)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_the_redis_only_answers_tls_and_the_acl_user(tls_redis_url: str) -> None:
    """The control: what the stack below is given really demands both."""
    port = tls_redis_url.split("@127.0.0.1:")[1].split("/", maxsplit=1)[0]
    with pytest.raises(redis.ConnectionError):
        redis.Redis(host="127.0.0.1", port=int(port), socket_timeout=2).ping()
    wrong = tls_redis_url.replace(PASSWORD, "not-the-password")
    with pytest.raises(redis.AuthenticationError):
        redis.Redis.from_url(wrong).ping()


@pytest.fixture
async def stack(
    postgres_url: str,
    service_postgres_url: str,
    template_database: str,
    resource_template_database: str,
    tls_redis_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Stack]:
    async with running_stack(
        postgres_url,
        service_postgres_url,
        tls_redis_url,
        template_database,
        resource_template_database,
        tmp_path_factory.mktemp("tls-stack"),
    ) as running:
        yield running


def test_tokens_revocations_and_logins_work_over_tls_with_an_acl_user(stack: Stack) -> None:
    token = stack.client_token(stack.machine_client, scope=READ)["access_token"]
    assert_works(stack, token)
    response = oauth(stack, "/oauth/revoke", stack.machine_client, token=token)
    revoked_at = time.monotonic()
    assert response.status_code == 200, response.text
    refused_within(stack, [token], revoked_at, "token, over rediss with an ACL user")
    user_token = stack.token("ada@example.com", READ)["access_token"]  # the login throttle
    assert_works(stack, user_token)
