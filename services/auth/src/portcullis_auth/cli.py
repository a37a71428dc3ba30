"""The `portcullis` command line: install, migrate, keys, clients, users, serve."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import sys
from collections.abc import Awaitable, Callable
from datetime import timedelta
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

import click
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession

from portcullis_auth.db.migrate import upgrade
from portcullis_auth.db.models import OAuthClient, Revocation, User, utcnow
from portcullis_auth.keys.sealing import KeySealer
from portcullis_auth.keys.service import SigningKeyService
from portcullis_auth.repositories.users import UserRepository
from portcullis_auth.revocation.publisher import RevocationNotLandedError, RevocationPublisher
from portcullis_auth.security.passwords import PasswordHasher
from portcullis_auth.services.clients import (
    GRANT_TYPES,
    ClientConfigError,
    ClientService,
    ClientSpec,
    CreatedClient,
)
from portcullis_auth.services.purge import purge as purge_rows
from portcullis_auth.services.revocations import RevocationService
from portcullis_auth.services.users import UserExistsError, UserService, normalise_username
from portcullis_auth.settings import DEFAULT_AUDIENCE, AuthSettings, get_settings
from portcullis_shared.environment import SettingsError
from portcullis_shared.sql import create_engine, create_sessionmaker

T = TypeVar("T")

PASSWORD_CLIENT_NAME = "Portcullis Password Grant Client"  # noqa: S105 - a name
PERSONAL_ACCESS_CLIENT_NAME = "Portcullis Personal Access Client"


def load_settings() -> AuthSettings:
    try:
        return get_settings()
    except SettingsError as exc:
        raise click.ClickException(f"configuration: {exc}") from None


def run_in_session(
    work: Callable[[AsyncSession, AuthSettings], Awaitable[T]],
    settings: AuthSettings | None = None,
) -> T:
    """Run `work` in one transaction, committed when it returns."""
    settings = settings or load_settings()

    async def runner() -> T:
        engine = create_engine(settings.database.url)
        try:
            async with create_sessionmaker(engine)() as session:
                result = await work(session, settings)
                await session.commit()
                return result
        finally:
            await engine.dispose()

    return asyncio.run(runner())


def friendly_errors(command: Callable[..., T]) -> Callable[..., T]:
    @wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        try:
            return command(*args, **kwargs)
        except (ClientConfigError, UserExistsError, ValueError) as exc:
            raise click.ClickException(str(exc)) from None

    return wrapper


@click.group()
def main() -> None:
    """Portcullis: an OAuth2 authorization server and token guard."""


# --- install and migrate ------------------------------------------------------


@main.command()
def migrate() -> None:
    """Bring the database schema up to date."""
    upgrade(load_settings().database.url)
    click.echo("database is up to date")


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print what was created as JSON.")
def install(as_json: bool) -> None:
    """Migrate, and create what a fresh deployment needs (idempotent)."""
    settings = load_settings()
    upgrade(settings.database.url)
    created: dict[str, object] = run_in_session(install_defaults)
    if as_json:
        click.echo(json.dumps(created, indent=2))
        return
    if not created:
        click.echo("already installed: nothing to do")
    for name, value in created.items():
        if name == "signing_key":
            click.echo(f"created signing key {value}")
        elif isinstance(value, dict):
            click.echo(f"created {value['name']}")
            click.echo(f"  client_id:     {value['client_id']}")
            if value.get("client_secret"):
                click.echo(f"  client_secret: {value['client_secret']}  (shown once)")


async def install_defaults(session: AsyncSession, settings: AuthSettings) -> dict[str, object]:
    created: dict[str, object] = {}
    keys = SigningKeyService(session, KeySealer(settings.secret_key))
    if not await keys.has_keys():
        key = await keys.generate(settings.tokens.signing_algorithm)
        created["signing_key"] = key.kid
    clients = ClientService(session)
    names = settings.scopes.names
    unprivileged = sorted(s for s in names if not settings.scopes.is_privileged(s))
    if await clients.find_by_name(PASSWORD_CLIENT_NAME) is None:
        result = await clients.create(
            ClientSpec(
                name=PASSWORD_CLIENT_NAME,
                grant_types=("password", "refresh_token"),
                scopes=sorted(names),
                default_scopes=unprivileged,
                first_party=True,
            ),
            names,
        )
        created["password_client"] = client_summary(result)
    if await clients.find_by_name(PERSONAL_ACCESS_CLIENT_NAME) is None:
        result = await clients.create(
            ClientSpec(
                name=PERSONAL_ACCESS_CLIENT_NAME,
                grant_types=(),
                scopes=sorted(names),
                first_party=True,
                personal_access=True,
            ),
            names,
        )
        created["personal_access_client"] = client_summary(result)
    return created


# --- keys ---------------------------------------------------------------------


@main.group()
def keys() -> None:
    """Signing keys."""


@keys.command("generate")
def keys_generate() -> None:
    """Add a signing key that signs at once (first key, or emergency replacement)."""

    async def work(session: AsyncSession, settings: AuthSettings) -> str:
        service = SigningKeyService(session, KeySealer(settings.secret_key))
        return (await service.generate(settings.tokens.signing_algorithm)).kid

    click.echo(f"created signing key {run_in_session(work)}")


@keys.command("rotate")
def keys_rotate() -> None:
    """Add a key that starts signing once every JWKS cache has seen it."""

    async def work(session: AsyncSession, settings: AuthSettings) -> tuple[str, str]:
        service = SigningKeyService(session, KeySealer(settings.secret_key))
        key = await service.rotate(settings.tokens.signing_algorithm, settings.tokens.jwks_max_age)
        return key.kid, key.activates_at.isoformat()

    kid, activates_at = run_in_session(work)
    click.echo(f"created signing key {kid}; it signs from {activates_at}")


@keys.command("list")
def keys_list() -> None:
    """List signing keys and their state."""

    async def work(session: AsyncSession, settings: AuthSettings) -> list[Any]:
        service = SigningKeyService(session, KeySealer(settings.secret_key))
        tokens = settings.tokens
        return await service.describe(max(tokens.access_token_ttl, tokens.pat_max_ttl))

    for info in run_in_session(work):
        click.echo(
            f"{info.kid}  {info.algorithm:6} {info.state:9} "
            f"activates {info.activates_at.isoformat()}"
        )


# --- clients ------------------------------------------------------------------


def client_summary(created: CreatedClient) -> dict[str, object]:
    summary = client_as_dict(created.client)
    summary["client_secret"] = created.secret
    return summary


def client_as_dict(client: OAuthClient) -> dict[str, object]:
    return {
        "client_id": client.id,
        "name": client.name,
        "public": client.is_public,
        "first_party": client.first_party,
        "personal_access": client.personal_access,
        "introspect": client.introspect,
        "grant_types": client.grant_types,
        "scopes": client.scopes,
        "default_scopes": client.default_scopes,
        "audiences": client.audiences,
        "redirect_uris": client.redirect_uris,
        "revoked": client.revoked_at is not None,
    }


def print_client(data: dict[str, object]) -> None:
    for name, value in data.items():
        shown = ", ".join(map(str, value)) if isinstance(value, list) else value
        suffix = "  (shown once: store it now)" if name == "client_secret" and value else ""
        click.echo(f"{name + ':':17}{shown}{suffix}")


@main.group()
def client() -> None:
    """OAuth clients."""


@client.command("create")
@click.argument("name")
@click.option(
    "--grant",
    "grant_types",
    multiple=True,
    type=click.Choice(GRANT_TYPES),
    required=True,
    help="A grant type the client may use (repeat for several).",
)
@click.option("--scope", "scopes", multiple=True, help="A scope the client may ask for (repeat).")
@click.option(
    "--default-scope",
    "default_scopes",
    multiple=True,
    help="A scope granted when none is asked for.",
)
@click.option(
    "--audience",
    "audiences",
    multiple=True,
    help="An audience the client may name; the first is the default.",
)
@click.option("--redirect-uri", "redirect_uris", multiple=True, help="A redirect URI (repeat).")
@click.option("--public", is_flag=True, help="A client without a secret.")
@click.option("--first-party", is_flag=True, help="A client of your own, trusted with user logins.")
@click.option("--introspect", is_flag=True, help="May introspect other clients' tokens (RFC 7662).")
@click.option("--json", "as_json", is_flag=True, help="Print the client as JSON.")
@friendly_errors
def client_create(
    name: str,
    grant_types: tuple[str, ...],
    scopes: tuple[str, ...],
    default_scopes: tuple[str, ...],
    audiences: tuple[str, ...],
    redirect_uris: tuple[str, ...],
    public: bool,
    first_party: bool,
    introspect: bool,
    as_json: bool,
) -> None:
    """Register a client; its secret is printed once."""

    async def work(session: AsyncSession, settings: AuthSettings) -> dict[str, object]:
        spec = ClientSpec(
            name=name,
            grant_types=grant_types,
            scopes=scopes,
            default_scopes=default_scopes,
            audiences=audiences or (DEFAULT_AUDIENCE,),
            redirect_uris=redirect_uris,
            public=public,
            first_party=first_party,
            introspect=introspect,
        )
        return client_summary(await ClientService(session).create(spec, settings.scopes.names))

    data = run_in_session(work)
    if "password" in grant_types and not first_party:
        click.echo(
            "warning: this client will handle users' passwords (the password grant); give it "
            "only to an app of your own, and mark it --first-party. Third-party apps should "
            "use another grant (RFC 9700 §2.4).",
            err=True,
        )
    click.echo(json.dumps(data, indent=2)) if as_json else print_client(data)


@client.command("list")
@click.option("--json", "as_json", is_flag=True)
def client_list(as_json: bool) -> None:
    """List clients (never their secrets)."""

    async def work(session: AsyncSession, _: AuthSettings) -> list[dict[str, object]]:
        return [client_as_dict(c) for c in await ClientService(session).list()]

    clients = run_in_session(work)
    if as_json:
        click.echo(json.dumps(clients, indent=2))
        return
    for data in clients:
        state = "revoked" if data["revoked"] else ("public" if data["public"] else "confidential")
        grants = ",".join(map(str, data["grant_types"]))  # type: ignore[call-overload]
        click.echo(f"{data['client_id']}  {state:12} {grants:40} {data['name']}")


async def _load_client(session: AsyncSession, client_id: str) -> OAuthClient:
    found = await ClientService(session).get(client_id)
    if found is None:
        raise click.ClickException(f"no client {client_id}")
    return found


@client.command("show")
@click.argument("client_id")
@click.option("--json", "as_json", is_flag=True)
def client_show(client_id: str, as_json: bool) -> None:
    """Show one client."""

    async def work(session: AsyncSession, _: AuthSettings) -> dict[str, object]:
        return client_as_dict(await _load_client(session, client_id))

    data = run_in_session(work)
    click.echo(json.dumps(data, indent=2)) if as_json else print_client(data)


@client.command("update")
@click.argument("client_id")
@click.option("--name")
@click.option("--grant", "grant_types", multiple=True, type=click.Choice(GRANT_TYPES))
@click.option("--scope", "scopes", multiple=True)
@click.option("--default-scope", "default_scopes", multiple=True)
@click.option("--audience", "audiences", multiple=True)
@click.option("--redirect-uri", "redirect_uris", multiple=True)
@click.option("--first-party/--third-party", default=None)
@click.option("--json", "as_json", is_flag=True)
@friendly_errors
def client_update(
    client_id: str,
    name: str | None,
    grant_types: tuple[str, ...],
    scopes: tuple[str, ...],
    default_scopes: tuple[str, ...],
    audiences: tuple[str, ...],
    redirect_uris: tuple[str, ...],
    first_party: bool | None,
    as_json: bool,
) -> None:
    """Change a client; each list option given replaces that whole list."""

    async def work(session: AsyncSession, settings: AuthSettings) -> dict[str, object]:
        found = await _load_client(session, client_id)
        await ClientService(session).update(
            found,
            settings.scopes.names,
            name=name,
            grant_types=list(grant_types) or None,
            scopes=list(scopes) or None,
            default_scopes=list(default_scopes) or None,
            audiences=list(audiences) or None,
            redirect_uris=list(redirect_uris) or None,
            first_party=first_party,
        )
        return client_as_dict(found)

    data = run_in_session(work)
    click.echo(json.dumps(data, indent=2)) if as_json else print_client(data)


@client.command("revoke")
@click.argument("client_id")
def client_revoke(client_id: str) -> None:
    """Revoke a client: it can no longer authenticate."""

    async def work(session: AsyncSession, settings: AuthSettings) -> list[Revocation]:
        await ClientService(session).revoke(await _load_client(session, client_id))
        revocations = RevocationService(session, settings.tokens)
        await revocations.revoke_client(client_id, reason="client_revoked")
        return revocations.recorded

    publish(run_in_session(work))
    click.echo(f"revoked client {client_id} and every token issued to it")


# --- users --------------------------------------------------------------------


@main.group()
def user() -> None:
    """Users."""


def read_password(from_stdin: bool) -> str:
    if from_stdin or not sys.stdin.isatty():
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    if not password:
        raise click.ClickException("no password given")
    return password


@user.command("create")
@click.argument("email")
@click.option("--admin", is_flag=True, help="Give the user the admin role.")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@click.option("--json", "as_json", is_flag=True)
@friendly_errors
def user_create(email: str, admin: bool, password_stdin: bool, as_json: bool) -> None:
    """Create a user; the password comes from a prompt or standard input."""
    password = read_password(password_stdin)

    async def work(session: AsyncSession, _: AuthSettings) -> dict[str, object]:
        created = await UserService(session, PasswordHasher()).create(
            email, password, is_admin=admin
        )
        return {"id": str(created.id), "email": created.email, "admin": created.is_admin}

    data = run_in_session(work)
    if as_json:
        click.echo(json.dumps(data, indent=2))
    else:
        click.echo(
            f"created user {data['email']} ({data['id']}){' with the admin role' if admin else ''}"
        )


async def _load_user(session: AsyncSession, email: str) -> User:
    found = await UserRepository(session).get_by_email(normalise_username(email))
    if found is None:
        raise click.ClickException(f"no user {email}")
    return found


def change_user(
    email: str, change: Callable[[User], Awaitable[None] | None], reason: str | None
) -> None:
    """Apply `change` to a user; when `reason` is given, revoke the user's tokens too."""

    async def work(session: AsyncSession, settings: AuthSettings) -> list[Revocation]:
        found = await _load_user(session, email)
        result = change(found)
        if result is not None:
            await result
        await session.flush()
        revocations = RevocationService(session, settings.tokens)
        if reason is not None:
            await revocations.revoke_user(found.id, reason=reason)
        return revocations.recorded

    publish(run_in_session(work))


@user.command("set-password")
@click.argument("email")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@friendly_errors
def user_set_password(email: str, password_stdin: bool) -> None:
    """Set a new password; the user's tokens are revoked."""
    password = read_password(password_stdin)
    if len(password) < 8:
        raise click.ClickException("a password needs at least 8 characters")
    hashed = PasswordHasher().hash(password)

    def set_hash(found: User) -> None:
        found.password_hash = hashed

    change_user(email, set_hash, reason="password_changed")
    click.echo(f"password of {email} changed; its tokens are revoked")


@user.command("set-admin")
@click.argument("email")
@click.option("--admin/--no-admin", default=True, help="Grant (default) or remove the admin role.")
def user_set_admin(email: str, admin: bool) -> None:
    """Grant or remove the admin role; removing it revokes the user's tokens."""

    def set_role(found: User) -> None:
        found.is_admin = admin

    change_user(email, set_role, reason=None if admin else "admin_removed")
    click.echo(
        f"{email} {'is' if admin else 'is no longer'} an admin"
        + ("" if admin else "; its tokens are revoked")
    )


@user.command("disable")
@click.argument("email")
def user_disable(email: str) -> None:
    """Disable a user: no more logins, every token revoked."""

    def disable_user(found: User) -> None:
        found.disabled_at = found.disabled_at or utcnow()

    change_user(email, disable_user, reason="user_disabled")
    click.echo(f"disabled {email}; its tokens are revoked")


@user.command("revoke-tokens")
@click.argument("email")
def user_revoke_tokens(email: str) -> None:
    """Revoke every token the user holds."""
    change_user(email, lambda _: None, reason="operator")
    click.echo(f"revoked every token of {email}")


# --- revocations and purge -----------------------------------------------------


def publish(rows: list[Revocation]) -> None:
    """Copy revocations to Redis now; if it is unreachable, the auth service lands them."""
    if not rows:
        return
    settings = load_settings()
    if settings.redis.url is None:
        return

    async def push() -> None:
        redis = Redis.from_url(settings.redis.url or "", socket_timeout=2, socket_connect_timeout=2)
        engine = create_engine(settings.database.url)
        try:
            publisher = RevocationPublisher(
                redis, create_sessionmaker(engine), settings.redis.key_prefix
            )
            await publisher.push_within_deadline(rows)
        finally:
            await redis.aclose()
            await engine.dispose()

    try:
        asyncio.run(push())
    except RevocationNotLandedError:
        click.echo(
            "warning: recorded, but Redis is unreachable; the auth service will copy it there "
            "within a second of Redis coming back",
            err=True,
        )


@main.group()
def revocations() -> None:
    """The revocation list in Redis."""


@revocations.command("sync")
@click.option(
    "--rebuild", is_flag=True, help="Rebuild from the database even when Redis looks level."
)
def revocations_sync(rebuild: bool) -> None:
    """Bring the Redis list level with the database now."""
    settings = load_settings()
    if settings.redis.url is None:
        raise click.ClickException("PORTCULLIS_REDIS_URL is not set")

    async def run() -> str:
        redis = Redis.from_url(settings.redis.url or "", socket_timeout=5)
        engine = create_engine(settings.database.url)
        try:
            publisher = RevocationPublisher(
                redis, create_sessionmaker(engine), settings.redis.key_prefix
            )
            if rebuild:
                await publisher.rebuild()
                return "rebuilt"
            return await publisher.sync()
        finally:
            await redis.aclose()
            await engine.dispose()

    click.echo(f"revocation list: {asyncio.run(run())}")


@main.command()
@click.option(
    "--retention-days", type=int, default=7, show_default=True, help="Keep ended rows this long."
)
@click.option(
    "--batch",
    type=click.IntRange(min=1),
    default=1000,
    show_default=True,
    help="Rows per transaction.",
)
def purge(retention_days: int, batch: int) -> None:
    """Delete expired and revoked rows older than the retention period."""
    settings = load_settings()

    async def run() -> dict[str, int]:
        engine = create_engine(settings.database.url)
        try:
            return await purge_rows(
                create_sessionmaker(engine), timedelta(days=retention_days), batch
            )
        finally:
            await engine.dispose()

    for table, count in asyncio.run(run()).items():
        click.echo(f"{table}: {count} deleted")


# --- serve --------------------------------------------------------------------


@main.group()
def serve() -> None:
    """Run a service."""


@main.command()
@click.option("--port", type=int, default=8000, show_default=True, help="Auth service port.")
@click.option("--posts-port", type=int, default=8001, show_default=True, help="Posts service port.")
@click.option(
    "--data",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path(".portcullis"),
    show_default=True,
    help="Folder for the embedded databases and dev secrets.",
)
def dev(port: int, posts_port: int, data: Path) -> None:
    """Run the whole stack on embedded defaults: SQLite, 127.0.0.1, playground on."""
    from portcullis_auth.dev import (  # noqa: PLC0415
        DEMO_EMAIL,
        DevState,
        banner,
        dev_settings,
        resource_environ,
        serve_both,
    )

    state = DevState.load_or_create(data)
    try:
        settings = dev_settings(state, port)
    except SettingsError as exc:
        raise click.ClickException(f"configuration: {exc}") from None
    upgrade(settings.database.url)

    async def first_run(session: AsyncSession, settings: AuthSettings) -> dict[str, object]:
        created = await install_defaults(session, settings)
        users = UserService(session, PasswordHasher())
        with contextlib.suppress(UserExistsError):
            await users.create(DEMO_EMAIL, state.demo_password)
        return created

    created = run_in_session(first_run, settings)
    password_client = created.get("password_client")
    if isinstance(password_client, dict):
        state = dataclasses.replace(
            state,
            password_client_id=str(password_client["client_id"]),
            password_client_secret=str(password_client["client_secret"]),
        )
        state.save()
    click.echo(banner(state, settings, f"http://127.0.0.1:{posts_port}"))
    try:
        environ = resource_environ(state, settings, posts_port)
        asyncio.run(serve_both(settings, environ, posts_port))
    except SettingsError as exc:
        raise click.ClickException(f"configuration: {exc}") from None


@serve.command("auth")
@click.option("--host", help="Bind address (default: PORTCULLIS_HOST or 127.0.0.1).")
@click.option("--port", type=int, help="Port (default: PORTCULLIS_PORT or 8000).")
def serve_auth(host: str | None, port: int | None) -> None:
    """Run the auth service."""
    from portcullis_auth.http.app import create_app  # noqa: PLC0415
    from portcullis_shared.serving import serve as serve_app  # noqa: PLC0415

    settings = load_settings()
    serve_app(
        create_app(settings),
        host=host or settings.server.host,
        port=port or settings.server.port,
    )


@serve.command("resource")
@click.option("--host", help="Bind address (default: PORTCULLIS_HOST or 127.0.0.1).")
@click.option("--port", type=int, help="Port (default: PORTCULLIS_PORT or 8001).")
@click.pass_context
def serve_resource(ctx: click.Context, host: str | None, port: int | None) -> None:
    """Run the posts service (migrating its database first)."""
    try:
        from portcullis_resource.cli import serve as resource_serve  # noqa: PLC0415
    except ImportError:
        raise click.ClickException(
            "the posts service (portcullis-resource) is not installed"
        ) from None
    ctx.invoke(resource_serve, host=host, port=port, run_migrations=True)
