"""`portcullis migrate` and `portcullis install`."""

from __future__ import annotations

import json

import click

from portcullis_auth.db.migrate import upgrade
from portcullis_auth.services.clients import CreatedClient
from portcullis_auth.services.installation import Installed, install_defaults
from portcullis_auth.services.unit_of_work import UnitOfWork
from portcullis_auth.settings import AuthSettings
from portcullis_cli.clients import client_summary
from portcullis_cli.runner import load_settings, run


@click.command()
def migrate() -> None:
    """Bring the database schema up to date."""
    upgrade(load_settings().database.url)
    click.echo("database is up to date")


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print what was created as JSON.")
def install(as_json: bool) -> None:
    """Migrate, and create what a fresh deployment needs (idempotent)."""
    settings = load_settings()
    upgrade(settings.database.url)

    async def work(uow: UnitOfWork, settings: AuthSettings) -> Installed:
        return await install_defaults(uow.session, settings)

    created = installed_as_dict(run(work, settings))
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
