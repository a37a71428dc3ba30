"""The `portcullis` command line, run in-process with click's CliRunner against real Postgres."""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import uuid
from datetime import datetime, timedelta
from typing import Any

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import select

from portcullis_auth.db.models import SigningKey, utcnow
from portcullis_auth.keys.sealing import KeySealer, UnsealError
from portcullis_auth.keys.service import SigningKeyService
from portcullis_auth.security.passwords import PasswordHasher
from portcullis_auth.services.clients import ClientService
from portcullis_auth.services.users import UserService
from portcullis_auth.settings import get_settings
from portcullis_cli.main import main
from portcullis_shared.sql import create_engine, create_sessionmaker

URL_SAFE = re.compile(r"^[A-Za-z0-9_-]+$")
READ_ONLY_MACHINE = (
    "--grant",
    "client_credentials",
    "--scope",
    "read-posts",
    "--default-scope",
    "read-posts",
)


def portcullis(*args: str, stdin: str | None = None) -> Result:
    return CliRunner().invoke(main, list(args), input=stdin, catch_exceptions=False)


def ok(*args: str, stdin: str | None = None) -> Result:
    result = portcullis(*args, stdin=stdin)
    assert result.exit_code == 0, f"portcullis {' '.join(args)}:\n{result.output}"
    return result


def ok_json(*args: str, stdin: str | None = None) -> Any:
    return json.loads(ok(*args, "--json", stdin=stdin).stdout)


def refused(*args: str, stdin: str | None = None) -> Result:
    result = portcullis(*args, stdin=stdin)
    assert result.exit_code != 0, f"portcullis {' '.join(args)} succeeded:\n{result.output}"
    assert "Traceback" not in result.output
    return result


def create_client(*args: str) -> dict[str, Any]:
    data: dict[str, Any] = ok_json("client", "create", *args)
    return data


def password_is(database_url: str, email: str, password: str) -> bool:
    async def check() -> bool:
        engine = create_engine(database_url)
        try:
            async with create_sessionmaker(engine)() as session:
                user = await UserService(session, PasswordHasher()).authenticate(email, password)
                return user is not None
        finally:
            await engine.dispose()

    return asyncio.run(check())


# --- clients ------------------------------------------------------------------


@pytest.mark.usefixtures("cli_environ")
@pytest.mark.parametrize("grant", ["password", "client_credentials"])
def test_public_client_with_a_confidential_grant_is_refused(grant: str) -> None:
    result = refused(
        "client", "create", "spa", "--public", "--grant", grant, "--scope", "read-posts"
    )

    assert "Error:" in result.output
    assert "public client" in result.output
    assert grant in result.output
    assert ok_json("client", "list") == []


@pytest.mark.usefixtures("cli_environ")
def test_client_create_prints_the_secret_once() -> None:
    created = create_client(
        "machine", "--grant", "client_credentials", "--scope", "read-posts", "--scope", "admin"
    )
    secret = created["client_secret"]
    client_id = created["client_id"]
    assert isinstance(secret, str)
    assert len(secret) >= 32
    assert URL_SAFE.match(secret), "client secrets are URL-safe"
    assert created["grant_types"] == ["client_credentials"]
    assert created["scopes"] == ["read-posts", "admin"]
    assert created["audiences"] == ["posts"]
    assert created["public"] is False
    assert created["revoked"] is False

    shown_text = ok("client", "show", client_id).output
    shown = ok_json("client", "show", client_id)
    listed_text = ok("client", "list").output
    listed = ok_json("client", "list")

    for output in (shown_text, listed_text, json.dumps(shown), json.dumps(listed)):
        assert secret not in output
        assert secret[:12] not in output
    assert "client_secret" not in shown
    assert client_id in shown_text
    assert client_id in listed_text
    assert [c["client_id"] for c in listed] == [client_id]
    assert all("client_secret" not in c for c in listed)
    assert shown == {k: v for k, v in created.items() if k != "client_secret"}


@pytest.mark.usefixtures("cli_environ")
def test_client_create_without_json_prints_the_secret_with_a_warning() -> None:
    output = ok("client", "create", "machine", "--grant", "client_credentials").output
    secret_line = next(line for line in output.splitlines() if line.startswith("client_secret:"))
    secret = secret_line.split()[1]

    assert URL_SAFE.match(secret)
    assert "shown once" in secret_line
    client_id = next(
        line.split()[1] for line in output.splitlines() if line.startswith("client_id:")
    )
    assert secret not in ok("client", "show", client_id).output


@pytest.mark.usefixtures("cli_environ")
def test_a_third_party_password_client_is_created_with_a_warning() -> None:
    third_party = ok("client", "create", "partner", "--grant", "password", "--json")
    assert "warning" in third_party.stderr.lower()
    assert "password" in third_party.stderr
    assert "--first-party" in third_party.stderr
    assert json.loads(third_party.stdout)["grant_types"] == ["password"]

    own = ok(
        "client", "create", "own app", "--grant", "password", "--first-party",
        "--scope", "read-posts", "--json",
    )  # fmt: skip
    assert own.stderr == ""
    machine = ok(
        "client", "create", "machine", "--grant", "client_credentials",
        "--scope", "read-posts", "--json",
    )  # fmt: skip
    assert machine.stderr == ""


@pytest.mark.usefixtures("cli_environ")
def test_a_client_without_scopes_is_created_with_a_warning() -> None:
    bare = ok("client", "create", "machine", "--grant", "client_credentials", "--json")
    assert "no scope" in bare.stderr
    assert "--scope" in bare.stderr
    assert json.loads(bare.stdout)["scopes"] == []


@pytest.mark.usefixtures("cli_environ")
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--public", "--grant", "refresh_token"), "could get no token"),
        (("--grant", "refresh_token"), "could get no token"),
        (("--grant", "authorization_code"), "--redirect-uri"),
        (
            ("--grant", "authorization_code", "--redirect-uri", "http://app.example/cb"),
            "must be https",
        ),
        (
            ("--grant", "authorization_code", "--redirect-uri", "https://app.example/cb#x"),
            "fragment",
        ),
        (
            # A resolver could send `localhost` elsewhere (RFC 8252 §8.3): IP literals only.
            ("--grant", "authorization_code", "--redirect-uri", "http://localhost:8080/cb"),
            "must be https",
        ),
    ],
    ids=[
        "public-refresh-only",
        "refresh-only",
        "code-without-redirect",
        "plain-http",
        "fragment",
        "localhost",
    ],
)
def test_a_client_that_could_get_no_token_is_refused(args: tuple[str, ...], message: str) -> None:
    result = refused("client", "create", "app", *args)
    assert message in result.output
    assert ok_json("client", "list") == []


@pytest.mark.usefixtures("cli_environ")
def test_third_party_app_clients_for_the_code_and_device_flows() -> None:
    web = create_client(
        "web app",
        "--grant", "authorization_code", "--grant", "refresh_token",
        "--redirect-uri", "https://app.example/cb", "--redirect-uri", "http://127.0.0.1/cb",
    )  # fmt: skip
    assert web["redirect_uris"] == ["https://app.example/cb", "http://127.0.0.1/cb"]
    assert web["client_secret"]
    tv = create_client("tv", "--public", "--grant", "device_code")
    assert tv["grant_types"] == ["urn:ietf:params:oauth:grant-type:device_code"]
    assert tv["client_secret"] is None


@pytest.mark.usefixtures("cli_environ")
def test_public_client_has_no_secret() -> None:
    created = create_client("cli app", "--public", "--grant", "device_code")
    assert created["public"] is True
    assert created["client_secret"] is None


@pytest.mark.usefixtures("cli_environ")
def test_client_update_changes_scopes() -> None:
    created = create_client("machine", *READ_ONLY_MACHINE)
    client_id = created["client_id"]

    updated = ok_json(
        "client", "update", client_id, "--scope", "read-posts", "--scope", "write-posts"
    )

    assert updated["scopes"] == ["read-posts", "write-posts"]
    shown = ok_json("client", "show", client_id)
    assert shown["scopes"] == ["read-posts", "write-posts"]
    assert shown["default_scopes"] == ["read-posts"]
    assert shown["grant_types"] == ["client_credentials"]
    assert "client_secret" not in updated


@pytest.mark.usefixtures("cli_environ")
def test_client_update_refuses_an_unworkable_change_and_keeps_the_client() -> None:
    created = create_client("machine", *READ_ONLY_MACHINE)
    client_id = created["client_id"]

    unknown = refused("client", "update", client_id, "--scope", "no-such-scope")
    assert "unknown scopes: no-such-scope" in unknown.output
    # Dropping a scope that is still a default scope cannot work either.
    dropped = refused("client", "update", client_id, "--scope", "write-posts")
    assert "default scopes" in dropped.output

    assert ok_json("client", "show", client_id)["scopes"] == ["read-posts"]


@pytest.mark.usefixtures("cli_environ")
def test_a_client_gets_a_budget_of_its_own_and_back_to_the_default() -> None:
    created = create_client("machine", *READ_ONLY_MACHINE, "--rate-limit", "100/second")
    client_id = created["client_id"]
    assert created["rate_limit"] == "100/second"

    assert ok_json("client", "update", client_id, "--rate-limit", "50/minute")["rate_limit"] == (
        "50/minute"
    )
    assert ok_json("client", "show", client_id)["rate_limit"] == "50/minute"
    malformed = refused("client", "update", client_id, "--rate-limit", "lots")
    assert "like 100/second" in malformed.output
    assert ok_json("client", "show", client_id)["rate_limit"] == "50/minute"
    assert ok_json("client", "update", client_id, "--rate-limit", "default")["rate_limit"] == (
        "default"
    )
    assert (
        "like 100/second"
        in refused(
            "client", "create", "x", "--grant", "client_credentials", "--rate-limit", "0/second"
        ).output
    )


@pytest.mark.usefixtures("cli_environ")
def test_client_revoke() -> None:
    kept = create_client("kept", "--grant", "client_credentials")["client_id"]
    client_id = create_client("machine", "--grant", "client_credentials")["client_id"]

    result = ok("client", "revoke", client_id)

    assert client_id in result.output
    assert ok_json("client", "show", client_id)["revoked"] is True
    assert ok_json("client", "show", kept)["revoked"] is False
    line = next(line for line in ok("client", "list").output.splitlines() if client_id in line)
    assert "revoked" in line
    # Revoking again is harmless.
    ok("client", "revoke", client_id)
    assert ok_json("client", "show", client_id)["revoked"] is True


@pytest.mark.usefixtures("cli_environ")
def test_unknown_client_is_an_error() -> None:
    for command in (("show",), ("revoke",), ("update", "--name", "x")):
        verb, *options = command
        result = refused("client", verb, "no-such-client", *options)
        assert "no client no-such-client" in result.output


# --- users --------------------------------------------------------------------


def test_user_create_reads_the_password_from_stdin(cli_environ: dict[str, str]) -> None:
    password = f"pw-{secrets.token_urlsafe(12)}"

    result = ok("user", "create", "ada@example.com", "--password-stdin", "--json", stdin=password)

    data = json.loads(result.stdout)
    assert str(uuid.UUID(data["id"])) == data["id"]
    assert data["email"] == "ada@example.com"
    assert data["admin"] is False
    assert password not in result.output
    database_url = cli_environ["PORTCULLIS_DATABASE_URL"]
    assert password_is(database_url, "ada@example.com", password)
    assert not password_is(database_url, "ada@example.com", password + "x")


@pytest.mark.usefixtures("cli_environ")
def test_user_create_refuses_a_second_user_with_the_same_email() -> None:
    ok("user", "create", "ada@example.com", "--password-stdin", stdin="first password\n")

    for email in ("ada@example.com", "ADA@Example.com "):
        result = refused("user", "create", email, "--password-stdin", stdin="second password\n")
        assert "already exists" in result.output


@pytest.mark.usefixtures("cli_environ")
def test_user_create_refuses_an_empty_or_short_password() -> None:
    assert "no password" in refused("user", "create", "a@example.com", stdin="\n").output
    assert "8 characters" in refused("user", "create", "a@example.com", stdin="short\n").output


@pytest.mark.usefixtures("cli_environ")
def test_user_create_with_admin_role() -> None:
    data = ok_json("user", "create", "root@example.com", "--admin", stdin="long enough pw\n")
    assert data["admin"] is True


# --- keys ---------------------------------------------------------------------


def key_states() -> dict[str, str]:
    states = {}
    for line in ok("keys", "list").output.splitlines():
        kid, algorithm, state, *_ = line.split()
        assert algorithm == "RS256"
        states[kid] = state
    return states


@pytest.mark.usefixtures("cli_environ")
def test_keys_generate_rotate_list() -> None:
    assert key_states() == {}

    generated = ok("keys", "generate").output
    match = re.fullmatch(r"created signing key (\S+)\n", generated)
    assert match, generated
    first = match.group(1)
    assert key_states() == {first: "signing"}

    rotated = ok("keys", "rotate").output
    match = re.fullmatch(r"created signing key (\S+); it signs from (\S+)\n", rotated)
    assert match, rotated
    second = match.group(1)
    assert second != first
    # The new key waits until every JWKS cache can have seen it.
    assert key_states() == {first: "signing", second: "pending"}


def add_signing_key(database_url: str, activates_at: datetime) -> str:
    async def add() -> str:
        engine = create_engine(database_url)
        try:
            async with create_sessionmaker(engine)() as session:
                service = SigningKeyService(session, KeySealer(get_settings().secret_key))
                key = await service.generate("RS256", activates_at=activates_at)
                await session.commit()
                return key.kid
        finally:
            await engine.dispose()

    return asyncio.run(add())


def test_keys_list_calls_a_key_retired_only_once_the_jwks_leaves_it_out(
    cli_environ: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The JWKS keeps the old key until the longest token it can have signed is past its
    expiry and the leeway (`TokenSettings.max_token_ttl`); `keys list` says the same."""
    for name in ("ACCESS_TOKEN_TTL", "PAT_TTL", "PAT_MAX_TTL"):
        monkeypatch.setenv(f"PORTCULLIS_{name}", "60")
    monkeypatch.setenv("PORTCULLIS_LEEWAY", "30")
    get_settings.cache_clear()
    database_url = cli_environ["PORTCULLIS_DATABASE_URL"]
    now = utcnow()
    first = add_signing_key(database_url, now - timedelta(days=1))
    second = add_signing_key(database_url, now - timedelta(seconds=95))  # past 60 + 30 s
    third = add_signing_key(database_url, now - timedelta(seconds=75))  # past 60 s only
    assert key_states() == {first: "retired", second: "published", third: "signing"}


@pytest.mark.usefixtures("cli_environ")
def test_keys_generate_replaces_the_signer_at_once() -> None:
    ok("keys", "generate")
    ok("keys", "generate")
    states = list(key_states().values())
    assert sorted(states) == ["published", "signing"]


# --- install ------------------------------------------------------------------


def given_credentials(monkeypatch: pytest.MonkeyPatch) -> tuple[str, str, str]:
    """The default clients' credentials a deployment chose, set as the posts service
    reads them: (password client id, its secret, playground client id)."""
    client_id, secret = f"client_{secrets.token_hex(10)}", secrets.token_urlsafe(32)
    playground_id = f"client_{secrets.token_hex(10)}"
    monkeypatch.setenv("PORTCULLIS_PASSWORD_CLIENT_ID", client_id)
    monkeypatch.setenv("PORTCULLIS_PASSWORD_CLIENT_SECRET", secret)
    monkeypatch.setenv("PORTCULLIS_PLAYGROUND_CLIENT_ID", playground_id)
    return client_id, secret, playground_id


def client_authenticates(database_url: str, client_id: str, secret: str | None) -> bool:
    async def check() -> bool:
        engine = create_engine(database_url)
        try:
            async with create_sessionmaker(engine)() as session:
                return await ClientService(session).authenticate(client_id, secret) is not None
        finally:
            await engine.dispose()

    return asyncio.run(check())


def test_install_with_given_credentials_creates_that_client_and_prints_no_secret(
    cli_environ: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    client_id, secret, playground_id = given_credentials(monkeypatch)

    result = ok("install")

    assert secret not in result.stdout + result.stderr
    assert secret[:12] not in result.stdout + result.stderr
    # No other secret either: the personal access client's is never shown.
    assert "shown once" not in result.output
    assert "client_secret: the one in PORTCULLIS_PASSWORD_CLIENT_SECRET" in result.stdout
    database_url = cli_environ["PORTCULLIS_DATABASE_URL"]
    assert client_authenticates(database_url, client_id, secret)
    assert not client_authenticates(database_url, client_id, secrets.token_urlsafe(32))
    clients = {c["name"]: c for c in ok_json("client", "list")}
    password_client = clients["Portcullis Password Grant Client"]
    assert password_client["client_id"] == client_id
    assert "password" in password_client["grant_types"]
    assert password_client["first_party"] is True
    assert clients["Portcullis Playground"]["client_id"] == playground_id
    assert clients["Portcullis Playground"]["public"] is True


def test_install_as_json_with_given_credentials_prints_no_secret(
    monkeypatch: pytest.MonkeyPatch, cli_environ: dict[str, str]
) -> None:
    client_id, secret, playground_id = given_credentials(monkeypatch)

    result = ok("install", "--json")

    assert secret not in result.stdout + result.stderr
    created = json.loads(result.stdout)
    assert created["password_client"]["client_id"] == client_id
    assert created["playground_client"]["client_id"] == playground_id
    for name in ("password_client", "personal_access_client", "playground_client"):
        assert created[name]["client_secret"] is None, name


def test_a_second_install_leaves_the_given_client_as_it_is(
    cli_environ: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    client_id, secret, _ = given_credentials(monkeypatch)
    ok("install")
    clients_before = ok_json("client", "list")

    again = ok("install")  # the migrate Job or service, run again

    assert "already installed" in again.stdout
    assert secret not in again.stdout + again.stderr
    assert ok_json("client", "list") == clients_before
    assert client_authenticates(cli_environ["PORTCULLIS_DATABASE_URL"], client_id, secret)


def test_install_with_another_secret_for_an_existing_client_changes_nothing(
    cli_environ: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    client_id, secret, _ = given_credentials(monkeypatch)
    ok("install")
    other = secrets.token_urlsafe(32)
    monkeypatch.setenv("PORTCULLIS_PASSWORD_CLIENT_SECRET", other)

    result = refused("install")

    assert client_id in result.stderr
    assert "another secret" in result.stderr
    assert secret not in result.output
    assert other not in result.output
    database_url = cli_environ["PORTCULLIS_DATABASE_URL"]
    assert client_authenticates(database_url, client_id, secret), "the secret was replaced"
    assert not client_authenticates(database_url, client_id, other)


def test_install_with_a_new_id_keeps_the_password_client_it_made_before(
    monkeypatch: pytest.MonkeyPatch, cli_environ: dict[str, str]
) -> None:
    made = ok_json("install")["password_client"]
    client_id, _, _ = given_credentials(monkeypatch)
    monkeypatch.delenv("PORTCULLIS_PLAYGROUND_CLIENT_ID")

    result = refused("install")

    assert made["client_id"] in result.stderr
    assert f"client revoke {made['client_id']}" in result.stderr
    # Once the old client is revoked, install creates the given one.
    ok("client", "revoke", made["client_id"])
    ok("install")
    names = {c["client_id"]: c["name"] for c in ok_json("client", "list") if not c["revoked"]}
    assert names[client_id] == "Portcullis Password Grant Client"


@pytest.mark.usefixtures("cli_environ")
@pytest.mark.parametrize(
    "secret",
    [
        secrets.token_urlsafe(24),
        secrets.token_hex(24),
        "a" * 64,
        "correct horse battery staple correct horse battery staple",
    ],
    ids=["24-bytes-base64url", "24-bytes-hex", "not-random", "not-base64url"],
)
def test_install_refuses_a_weak_password_client_secret(
    monkeypatch: pytest.MonkeyPatch, secret: str
) -> None:
    given_credentials(monkeypatch)
    monkeypatch.setenv("PORTCULLIS_PASSWORD_CLIENT_SECRET", secret)

    result = refused("install")

    assert "PORTCULLIS_PASSWORD_CLIENT_SECRET" in result.stderr
    assert "32 random bytes" in result.stderr
    assert secret not in result.output
    assert ok_json("client", "list") == []


@pytest.mark.usefixtures("cli_environ")
@pytest.mark.parametrize("variable", ["PASSWORD_CLIENT_ID", "PLAYGROUND_CLIENT_ID"])
@pytest.mark.parametrize(
    "client_id",
    ["posts-login", f"client_{secrets.token_hex(10).upper()}", str(uuid.uuid4())],
    ids=["a-name", "uppercase", "a-uuid"],
)
def test_install_refuses_an_id_that_is_no_client_id(
    monkeypatch: pytest.MonkeyPatch, variable: str, client_id: str
) -> None:
    given_credentials(monkeypatch)
    monkeypatch.setenv(f"PORTCULLIS_{variable}", client_id)

    result = refused("install")

    assert f"PORTCULLIS_{variable}" in result.stderr
    assert "client_" in result.stderr
    assert ok_json("client", "list") == []


@pytest.mark.usefixtures("cli_environ")
@pytest.mark.parametrize("unset", ["PASSWORD_CLIENT_ID", "PASSWORD_CLIENT_SECRET"])
def test_install_needs_both_or_neither_of_the_password_client_credentials(
    monkeypatch: pytest.MonkeyPatch, unset: str
) -> None:
    _, secret, _ = given_credentials(monkeypatch)
    monkeypatch.delenv(f"PORTCULLIS_{unset}")

    result = refused("install")

    assert "PORTCULLIS_PASSWORD_CLIENT_ID" in result.stderr
    assert "PORTCULLIS_PASSWORD_CLIENT_SECRET" in result.stderr
    assert secret not in result.output
    assert ok_json("client", "list") == []


# --- configuration ------------------------------------------------------------


@pytest.mark.usefixtures("cli_environ")
@pytest.mark.parametrize(
    "secret_key",
    [None, "", secrets.token_hex(16), "not a secret at all"],
    ids=["missing", "empty", "16-bytes", "not-hex-or-base64"],
)
@pytest.mark.parametrize("command", [("client", "list"), ("keys", "generate"), ("install",)])
def test_bad_secret_key_stops_with_a_message_naming_it(
    monkeypatch: pytest.MonkeyPatch, secret_key: str | None, command: tuple[str, ...]
) -> None:
    if secret_key is None:
        monkeypatch.delenv("PORTCULLIS_SECRET_KEY")
    else:
        monkeypatch.setenv("PORTCULLIS_SECRET_KEY", secret_key)
    get_settings.cache_clear()

    result = refused(*command)

    assert result.exit_code == 1
    assert "PORTCULLIS_SECRET_KEY" in result.output
    assert result.output.startswith("Error: configuration:")


@pytest.mark.usefixtures("cli_environ")
def test_missing_database_url_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PORTCULLIS_DATABASE_URL")
    get_settings.cache_clear()

    result = refused("client", "list")

    assert "PORTCULLIS_DATABASE_URL" in result.output


def test_client_create_takes_its_secret_from_stdin_and_never_prints_it(
    cli_environ: dict[str, str],
) -> None:
    secret = secrets.token_urlsafe(32)
    result = ok(
        "client", "create", "vaulted", *READ_ONLY_MACHINE, "--secret-stdin", "--json",
        stdin=secret + "\n",
    )  # fmt: skip
    created = json.loads(result.stdout)
    assert secret not in result.output
    assert created["client_secret"] is None
    database_url = cli_environ["PORTCULLIS_DATABASE_URL"]
    assert client_authenticates(database_url, created["client_id"], secret)
    assert not client_authenticates(database_url, created["client_id"], secrets.token_urlsafe(32))


@pytest.mark.usefixtures("cli_environ")
@pytest.mark.parametrize(
    "secret", [secrets.token_urlsafe(24), "", "a" * 64], ids=["24-bytes", "empty", "not-random"]
)
def test_client_create_refuses_a_weak_secret_from_stdin(secret: str) -> None:
    result = refused(
        "client", "create", "vaulted", *READ_ONLY_MACHINE, "--secret-stdin", stdin=secret
    )
    assert "32 random bytes" in result.output
    if secret:
        assert secret not in result.output
    assert ok_json("client", "list") == []


@pytest.mark.usefixtures("cli_environ")
def test_a_public_client_takes_no_secret_from_stdin() -> None:
    result = refused(
        "client", "create", "app", "--grant", "authorization_code", "--public",
        "--redirect-uri", "https://app.example/cb", "--secret-stdin", stdin="x" * 43,
    )  # fmt: skip
    assert "public client has no secret" in result.output


def test_rotate_secret_shows_the_new_secret_once_and_keeps_the_old_for_the_overlap(
    cli_environ: dict[str, str],
) -> None:
    created = create_client("machine", *READ_ONLY_MACHINE)
    client_id, old = created["client_id"], created["client_secret"]
    rotated = ok_json("client", "rotate-secret", client_id, "--overlap", "2h")
    new = rotated["client_secret"]
    assert new
    assert new != old
    assert rotated["previous_secret_valid_until"]
    database_url = cli_environ["PORTCULLIS_DATABASE_URL"]
    assert client_authenticates(database_url, client_id, new)
    assert client_authenticates(database_url, client_id, old)

    ok("client", "rotate-secret", client_id, "--overlap", "0")
    assert not client_authenticates(database_url, client_id, new)


def test_rotate_secret_takes_the_new_secret_from_stdin(cli_environ: dict[str, str]) -> None:
    created = create_client("machine", *READ_ONLY_MACHINE)
    secret = secrets.token_urlsafe(32)
    result = ok(
        "client", "rotate-secret", created["client_id"], "--overlap", "15m", "--secret-stdin",
        stdin=secret + "\n",
    )  # fmt: skip
    assert secret not in result.output
    assert "shown once" not in result.output
    assert client_authenticates(
        cli_environ["PORTCULLIS_DATABASE_URL"], created["client_id"], secret
    )


@pytest.mark.usefixtures("cli_environ")
@pytest.mark.parametrize("overlap", ["soon", "1w", "-5m"])
def test_rotate_secret_refuses_a_duration_it_cannot_read(overlap: str) -> None:
    created = create_client("machine", *READ_ONLY_MACHINE)
    result = refused("client", "rotate-secret", created["client_id"], "--overlap", overlap)
    assert "duration" in result.output
    assert "Traceback" not in result.output


@pytest.mark.usefixtures("cli_environ")
@pytest.mark.parametrize("overlap", ["31d", "745h", "99999999999999999999d"])
def test_rotate_secret_refuses_an_overlap_over_30_days(overlap: str) -> None:
    created = create_client("machine", *READ_ONLY_MACHINE)
    result = refused("client", "rotate-secret", created["client_id"], "--overlap", overlap)
    assert "30 days at most" in result.output


def sealed_keys(database_url: str) -> list[tuple[str, bytes]]:
    async def read() -> list[tuple[str, bytes]]:
        engine = create_engine(database_url)
        try:
            async with create_sessionmaker(engine)() as session:
                rows = (await session.execute(select(SigningKey))).scalars()
                return [(row.kid, row.sealed_private_key) for row in rows]
        finally:
            await engine.dispose()

    return asyncio.run(read())


def opens_under(secret_key: bytes, database_url: str) -> bool:
    keys = sealed_keys(database_url)
    assert keys
    try:
        for kid, sealed in keys:
            KeySealer(secret_key).unseal(sealed, kid)
    except UnsealError:
        return False
    return True


def test_the_secret_key_rotates_with_previous_and_reencrypt(
    cli_environ: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    ok("install")
    ok("keys", "rotate")  # two keys, one still pending
    database_url = cli_environ["PORTCULLIS_DATABASE_URL"]
    old_text = cli_environ["PORTCULLIS_SECRET_KEY"]
    old, new = bytes.fromhex(old_text), secrets.token_bytes(32)
    assert opens_under(old, database_url)

    monkeypatch.setenv("PORTCULLIS_SECRET_KEY", new.hex())
    get_settings.cache_clear()
    stuck = refused("keys", "reencrypt")
    assert "PORTCULLIS_SECRET_KEY_PREVIOUS" in stuck.output
    assert old_text not in stuck.output
    assert opens_under(old, database_url)  # nothing changed

    monkeypatch.setenv("PORTCULLIS_SECRET_KEY_PREVIOUS", old_text)
    get_settings.cache_clear()
    assert "sealed 2 signing keys" in ok("keys", "reencrypt").output
    assert opens_under(new, database_url)
    assert not opens_under(old, database_url)

    monkeypatch.delenv("PORTCULLIS_SECRET_KEY_PREVIOUS")
    get_settings.cache_clear()
    ok("keys", "reencrypt")  # runs again without the old secret: nothing left sealed under it


def test_install_accepts_the_password_clients_previous_secret_during_an_overlap(
    cli_environ: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A migrate Job run again mid-rotation still holds the old secret: it is valid."""
    client_id, old, _ = given_credentials(monkeypatch)
    ok("install")
    ok("client", "rotate-secret", client_id, "--overlap", "1h")
    ok("install")
    ok("client", "rotate-secret", client_id, "--overlap", "0")
    stale = refused("install")
    assert "current secret" in stale.stderr
    assert old not in stale.output
