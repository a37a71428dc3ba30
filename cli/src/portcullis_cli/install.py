"""`portcullis migrate` and `portcullis install`."""

from __future__ import annotations

import json

import click

from portcullis_auth.db.migrate import upgrade
from portcullis_auth.security.secrets import require_client_id, require_strong_secret
from portcullis_auth.services.clients import CreatedClient
from portcullis_auth.services.installation import (
    GivenClients,
    InstallConflictError,
    Installed,
    install_defaults,
)
from portcullis_auth.services.unit_of_work import UnitOfWork
from portcullis_auth.settings import AuthSettings
from portcullis_cli.clients import client_summary
from portcullis_cli.runner import load_settings, run
from portcullis_shared.environment import PREFIX, EnvReader

PASSWORD_CLIENT_ID = "PASSWORD_CLIENT_ID"  # noqa: S105 - a variable's name
PASSWORD_CLIENT_SECRET = "PASSWORD_CLIENT_SECRET"  # noqa: S105 - a variable's name
PLAYGROUND_CLIENT_ID = "PLAYGROUND_CLIENT_ID"


@click.command()
def migrate() -> None:
    """Bring the database schema up to date."""
    upgrade(load_settings().database.url)
    click.echo("database is up to date")


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print what was created as JSON.")
def install(as_json: bool) -> None:
    """Migrate, and create what a fresh deployment needs (idempotent).

    With PORTCULLIS_PASSWORD_CLIENT_ID and PORTCULLIS_PASSWORD_CLIENT_SECRET set (as
    the posts service reads them), the password client gets that id and secret, and
    no secret is printed; PORTCULLIS_PLAYGROUND_CLIENT_ID likewise names the
    playground's client. A client given so that exists already is left as it is; one
    that disagrees (another secret, revoked) stops install, with nothing changed.
    """
    settings = load_settings()
    given = given_clients(EnvReader())
    upgrade(settings.database.url)

    async def work(uow: UnitOfWork, settings: AuthSettings) -> Installed:
        return await install_defaults(uow.session, settings, given)

    try:
        created = installed_as_dict(run(work, settings))
    except InstallConflictError as exc:
        raise click.ClickException(str(exc)) from None
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
            elif name == "password_client" and given.password_client_secret is not None:
                click.echo(f"  client_secret: the one in {PREFIX}{PASSWORD_CLIENT_SECRET}")


def given_clients(env: EnvReader) -> GivenClients:
    """The default clients' credentials the deployment chose, checked before anything is
    migrated; each refusal names its variable and never repeats a secret."""
    client_id, secret = env.raw(PASSWORD_CLIENT_ID), env.raw(PASSWORD_CLIENT_SECRET)
    if (client_id is None) != (secret is None):
        raise click.ClickException(
            f"configuration: set both {PREFIX}{PASSWORD_CLIENT_ID} and "
            f"{PREFIX}{PASSWORD_CLIENT_SECRET}, or neither (install then makes them)"
        )
    playground_id = env.raw(PLAYGROUND_CLIENT_ID)
    checks = (
        (PASSWORD_CLIENT_ID, client_id, require_client_id),
        (PASSWORD_CLIENT_SECRET, secret, require_strong_secret),
        (PLAYGROUND_CLIENT_ID, playground_id, require_client_id),
    )
    for name, value, check in checks:
        if value is not None:
            try:
                check(value)
            except ValueError as exc:
                raise click.ClickException(f"configuration: {PREFIX}{name}: {exc}") from None
    return GivenClients(client_id, secret, playground_id)


def installed_as_dict(installed: Installed) -> dict[str, object]:
    created: dict[str, object] = {}
    if installed.signing_key is not None:
        created["signing_key"] = installed.signing_key
    clients: dict[str, CreatedClient | None] = {
        "password_client": installed.password_client,
        "personal_access_client": installed.personal_access_client,
        "playground_client": installed.playground_client,
    }
    for name, client in clients.items():
        if client is not None:
            created[name] = client_summary(client)
    return created
