"""`portcullis-resource`: migrate and serve the posts service."""

from __future__ import annotations

import click

from portcullis_resource.db.migrate import upgrade
from portcullis_resource.settings import ResourceSettings, get_settings
from portcullis_shared.environment import SettingsError


def load_settings() -> ResourceSettings:
    try:
        return get_settings()
    except SettingsError as exc:
        raise click.ClickException(f"configuration: {exc}") from None


@click.group()
def main() -> None:
    """The Portcullis posts service."""


@main.command()
def migrate() -> None:
    """Bring the posts database schema up to date."""
    upgrade(load_settings().database_url)
    click.echo("posts database is up to date")


@main.command()
@click.option("--host", help="Bind address (default: PORTCULLIS_HOST or 127.0.0.1).")
@click.option("--port", type=int, help="Port (default: PORTCULLIS_PORT or 8001).")
@click.option("--migrate/--no-migrate", "run_migrations", default=True, help="Migrate first.")
def serve(host: str | None, port: int | None, run_migrations: bool) -> None:
    """Run the posts service."""
    from portcullis_resource.http.app import create_app  # noqa: PLC0415
    from portcullis_shared.serving import serve as serve_app  # noqa: PLC0415

    settings = load_settings()
    if run_migrations:
        upgrade(settings.database_url)
    serve_app(create_app(settings), host=host or settings.host, port=port or settings.port)
