"""The `portcullis` command: one group a concern, each in a module of its own."""

from __future__ import annotations

import click

from portcullis_cli.clients import client
from portcullis_cli.dev import dev
from portcullis_cli.install import install, migrate
from portcullis_cli.keys import keys
from portcullis_cli.revocations import purge, revocations
from portcullis_cli.serve import serve
from portcullis_cli.users import user


@click.group()
def main() -> None:
    """Portcullis: an OAuth2 authorization server and token guard."""


for command in (install, migrate, keys, client, user, revocations, purge, serve, dev):
    main.add_command(command)
