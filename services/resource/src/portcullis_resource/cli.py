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
    import uvicorn  # noqa: PLC0415 - only this command needs the server

    from portcullis_resource.http.app import create_app  # noqa: PLC0415
    from portcullis_shared.http_protocol import SERVE_OPTIONS  # noqa: PLC0415
    from portcullis_shared.serving import tune_garbage_collector  # noqa: PLC0415

    settings = load_settings()
    if run_migrations:
        upgrade(settings.database_url)
    app = create_app(settings)
    tune_garbage_collector()
    uvicorn.run(
        app,
        host=host or settings.host,
        port=port or settings.port,
        access_log=False,  # request lines can carry credentials in query strings
        proxy_headers=False,
        log_level="info",
        **SERVE_OPTIONS,
    )
