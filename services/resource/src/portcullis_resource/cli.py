"""`portcullis-resource`: migrate and serve the posts service."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from portcullis_resource.db.migrate import upgrade
from portcullis_shared.environment import SettingsError

if TYPE_CHECKING:
    from portcullis_resource.settings import ResourceSettings


def load_settings() -> ResourceSettings:
    # Imported here: the settings bring the guard, and with it prometheus-client, which
    # `serve` must not import before it has chosen where its workers keep their metrics.
    from portcullis_resource.settings import get_settings  # noqa: PLC0415

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
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=1,
    envvar="PORTCULLIS_WORKERS",
    show_default=True,
    help="Worker processes (or PORTCULLIS_WORKERS).",
)
def serve(host: str | None, port: int | None, run_migrations: bool, workers: int) -> None:
    """Run the posts service."""
    from portcullis_shared.worker_metrics import prepare_worker_metrics  # noqa: PLC0415

    prepare_worker_metrics(workers)  # before the service's modules import prometheus-client
    from portcullis_shared.serving import serve as serve_app  # noqa: PLC0415

    settings = load_settings()  # checked once here; each worker reads them again
    if run_migrations:
        upgrade(settings.database_url)
    serve_app(
        "portcullis_resource.http.app:serving_app",
        host=host or settings.host,
        port=port or settings.port,
        workers=workers,
        log_format=settings.observability.log_format,
    )
