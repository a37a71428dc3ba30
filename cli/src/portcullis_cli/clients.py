"""`portcullis client`: OAuth clients."""

from __future__ import annotations

import json
import re
import sys
from datetime import timedelta

import click

from portcullis_auth.db.models import OAuthClient
from portcullis_auth.security.secrets import require_strong_secret
from portcullis_auth.services.clients import (
    DEVICE_CODE,
    GRANT_TYPES,
    MAX_SECRET_OVERLAP,
    ClientService,
    ClientSpec,
    CreatedClient,
)
from portcullis_auth.services.unit_of_work import UnitOfWork
from portcullis_auth.settings import DEFAULT_AUDIENCE, AuthSettings
from portcullis_cli.runner import friendly_errors, run

GRANT_CHOICES = (*GRANT_TYPES, "device_code")
"""The grant types by their RFC names, and `device_code` for the device grant's URN."""


def grant_names(chosen: tuple[str, ...]) -> list[str]:
    return [DEVICE_CODE if grant == "device_code" else grant for grant in chosen]


THIRD_PARTY_LOGIN_WARNING = (
    "warning: this client will handle users' passwords (the password grant); give it only "
    "to an app of your own, and mark it --first-party. Third-party apps should use another "
    "grant (RFC 9700 §2.4)."
)


NO_SCOPE_WARNING = (
    "warning: this client has no scope (no --scope): its tokens will carry none, so no "
    "scope-checked route will accept them. Add scopes with `portcullis client update "
    "CLIENT --scope ...`."
)


RATE_LIMIT_HELP = (
    "Requests the client may make to each endpoint (token, introspection, revocation, "
    "...), like 100/second or 6000/minute, in place of PORTCULLIS_RATE_LIMIT_PER_CLIENT."
)


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
        "rate_limit": client.rate_limit or "default",
        "revoked": client.revoked_at is not None,
    }


def print_client(data: dict[str, object], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    for name, value in data.items():
        shown = ", ".join(map(str, value)) if isinstance(value, list) else value
        suffix = "  (shown once: store it now)" if name == "client_secret" and value else ""
        click.echo(f"{name + ':':17}{shown}{suffix}")


async def _load_client(service: ClientService, client_id: str) -> OAuthClient:
    found = await service.get(client_id)
    if found is None:
        raise click.ClickException(f"no client {client_id}")
    return found


@click.group()
def client() -> None:
    """OAuth clients."""


@client.command("create")
@click.argument("name")
@click.option(
    "--grant",
    "grant_types",
    multiple=True,
    type=click.Choice(GRANT_CHOICES),
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
@click.option(
    "--redirect-uri",
    "redirect_uris",
    multiple=True,
    help="Where authorization answers go (repeat); any port of http://127.0.0.1 matches.",
)
@click.option("--public", is_flag=True, help="A client without a secret (apps, SPAs, CLIs).")
@click.option("--first-party", is_flag=True, help="A client of your own, trusted with user logins.")
@click.option("--introspect", is_flag=True, help="May introspect other clients' tokens (RFC 7662).")
@click.option("--rate-limit", help=RATE_LIMIT_HELP)
@click.option(
    "--secret-stdin",
    is_flag=True,
    help="Read the client's secret from standard input (from a vault, say: at least 32 "
    "random bytes as base64url or hex) instead of making one; it is never printed.",
)
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
    rate_limit: str | None,
    secret_stdin: bool,
    as_json: bool,
) -> None:
    """Register a client; its secret is printed once (unless given on standard input)."""
    given_secret = None
    if secret_stdin:
        if public:
            raise click.ClickException("a public client has no secret: drop --secret-stdin")
        given_secret = read_client_secret()

    async def work(uow: UnitOfWork, settings: AuthSettings) -> dict[str, object]:
        spec = ClientSpec(
            name=name,
            grant_types=grant_names(grant_types),
            scopes=scopes,
            default_scopes=default_scopes,
            audiences=audiences or (DEFAULT_AUDIENCE,),
            redirect_uris=redirect_uris,
            public=public,
            first_party=first_party,
            introspect=introspect,
            rate_limit=rate_limit,
        )
        created = await ClientService(uow.session).create(
            spec, settings.scopes.names, secret=given_secret
        )
        return client_summary(created)

    data = run(work)
    if "password" in grant_types and not first_party:
        click.echo(THIRD_PARTY_LOGIN_WARNING, err=True)
    if not scopes:
        click.echo(NO_SCOPE_WARNING, err=True)
    print_client(data, as_json)


@client.command("list")
@click.option("--json", "as_json", is_flag=True)
def client_list(as_json: bool) -> None:
    """List clients (never their secrets)."""

    async def work(uow: UnitOfWork, _: AuthSettings) -> list[dict[str, object]]:
        return [client_as_dict(c) for c in await ClientService(uow.session).list()]

    clients = run(work)
    if as_json:
        click.echo(json.dumps(clients, indent=2))
        return
    for data in clients:
        state = "revoked" if data["revoked"] else ("public" if data["public"] else "confidential")
        grants = ",".join(map(str, data["grant_types"]))  # type: ignore[call-overload]
        click.echo(f"{data['client_id']}  {state:12} {grants:40} {data['name']}")


@client.command("show")
@click.argument("client_id")
@click.option("--json", "as_json", is_flag=True)
def client_show(client_id: str, as_json: bool) -> None:
    """Show one client."""

    async def work(uow: UnitOfWork, _: AuthSettings) -> dict[str, object]:
        return client_as_dict(await _load_client(ClientService(uow.session), client_id))

    print_client(run(work), as_json)


@client.command("update")
@click.argument("client_id")
@click.option("--name")
@click.option("--grant", "grant_types", multiple=True, type=click.Choice(GRANT_CHOICES))
@click.option("--scope", "scopes", multiple=True)
@click.option("--default-scope", "default_scopes", multiple=True)
@click.option("--audience", "audiences", multiple=True)
@click.option("--redirect-uri", "redirect_uris", multiple=True)
@click.option("--first-party/--third-party", default=None)
@click.option("--rate-limit", help=RATE_LIMIT_HELP + ' "default": the service\'s.')
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
    rate_limit: str | None,
    as_json: bool,
) -> None:
    """Change a client; each list option given replaces that whole list."""

    async def work(uow: UnitOfWork, settings: AuthSettings) -> dict[str, object]:
        service = ClientService(uow.session)
        found = await _load_client(service, client_id)
        await service.update(
            found,
            settings.scopes.names,
            name=name,
            grant_types=grant_names(grant_types) or None,
            scopes=list(scopes) or None,
            default_scopes=list(default_scopes) or None,
            audiences=list(audiences) or None,
            redirect_uris=list(redirect_uris) or None,
            first_party=first_party,
            rate_limit=rate_limit,
        )
        return client_as_dict(found)

    print_client(run(work), as_json)


DURATION = re.compile(r"(\d+)([smhd]?)")
SECONDS_PER_UNIT = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> timedelta:
    """`90`, `90s`, `15m`, `2h` or `7d`, up to `MAX_SECRET_OVERLAP`."""
    found = DURATION.fullmatch(text.strip())
    if found is None:
        raise click.BadParameter("a duration is a whole number and s, m, h or d (15m, 2h, 7d)")
    seconds = int(found.group(1)) * SECONDS_PER_UNIT[found.group(2)]
    if seconds > MAX_SECRET_OVERLAP.total_seconds():
        raise click.BadParameter(f"the overlap may last {MAX_SECRET_OVERLAP.days} days at most")
    return timedelta(seconds=seconds)


def read_client_secret() -> str:
    """A client secret from standard input: hidden when typed at a terminal, else the
    first line; refused (never repeated) unless it is strong."""
    if sys.stdin.isatty():
        typed = click.prompt("Client secret", hide_input=True, confirmation_prompt=True)
    else:
        typed = sys.stdin.readline()
    return require_strong_secret(str(typed).strip())


@client.command("rotate-secret")
@click.argument("client_id")
@click.option(
    "--overlap",
    required=True,
    help="How long the current secret keeps working beside the new one (15m, 2h, 7d; 0 "
    "stops it at once). A rotation during an overlap ends the older one.",
)
@click.option(
    "--secret-stdin",
    is_flag=True,
    help="Read the new secret from standard input (at least 32 random bytes as base64url "
    "or hex) instead of making one; it is never printed.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@friendly_errors
def client_rotate_secret(client_id: str, overlap: str, secret_stdin: bool, as_json: bool) -> None:
    """Give a client a new secret; the current one works until the overlap ends."""
    keep_old_for = parse_duration(overlap)
    given = read_client_secret() if secret_stdin else None

    async def work(uow: UnitOfWork, _: AuthSettings) -> dict[str, object]:
        service = ClientService(uow.session)
        found = await _load_client(service, client_id)
        made = await service.rotate_secret(found, keep_old_for, given)
        ends = found.previous_secret_expires_at
        return {
            "client_id": found.id,
            "client_secret": made,
            "previous_secret_valid_until": None if ends is None else ends.isoformat(),
        }

    data = run(work)
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    if data["client_secret"]:
        click.echo(f"client_secret:   {data['client_secret']}  (shown once: store it now)")
    ends = data["previous_secret_valid_until"]
    click.echo(
        f"the previous secret of {client_id} works until {ends}"
        if ends
        else f"the previous secret of {client_id} no longer works"
    )


@client.command("revoke")
@click.argument("client_id")
def client_revoke(client_id: str) -> None:
    """Revoke a client: it can no longer authenticate, and its tokens are revoked."""

    async def work(uow: UnitOfWork, _: AuthSettings) -> None:
        service = ClientService(uow.session)
        await service.revoke(await _load_client(service, client_id), uow.revocations)

    run(work)
    click.echo(f"revoked client {client_id} and every token issued to it")
