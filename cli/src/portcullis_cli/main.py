"""The `portcullis` command: one group a concern, each in a module of its own.

A command's module is imported only when the command runs, so an image that
holds one service (`portcullis-cli[auth]` or `portcullis-cli[resource]`) runs
that service's commands without the other service installed.
"""

from __future__ import annotations

import importlib
from typing import Any

import click

COMMANDS = {
    "install": ("portcullis_cli.install", "install"),
    "migrate": ("portcullis_cli.install", "migrate"),
    "migrate-resource": ("portcullis_resource.cli", "migrate"),
    "keys": ("portcullis_cli.keys", "keys"),
    "client": ("portcullis_cli.clients", "client"),
    "user": ("portcullis_cli.users", "user"),
    "revocations": ("portcullis_cli.revocations", "revocations"),
    "purge": ("portcullis_cli.revocations", "purge"),
    "serve": ("portcullis_cli.serve", "serve"),
    "dev": ("portcullis_cli.dev", "dev"),
}
"""Command name -> (module, attribute)."""


class LazyCommands(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        found = COMMANDS.get(cmd_name)
        if found is None:
            return None
        module_name, attribute = found
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as missing:
            if missing.name is None or not missing.name.startswith("portcullis_"):
                raise
            package = missing.name.split(".")[0].replace("_", "-")
            raise click.ClickException(
                f"`portcullis {cmd_name}` needs {package}, which is not installed here"
            ) from None
        command: Any = getattr(module, attribute)
        assert isinstance(command, click.Command)
        return command


@click.group(cls=LazyCommands)
def main() -> None:
    """Portcullis: an OAuth2 authorization server and token guard."""
