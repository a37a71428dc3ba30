"""`portcullis serve auth|resource`: each imports only its own service."""

from __future__ import annotations

import click


@click.group()
def serve() -> None:
    """Run a service."""


workers_option = click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=1,
    envvar="PORTCULLIS_WORKERS",
    show_default=True,
    help="Worker processes (or PORTCULLIS_WORKERS).",
)


@serve.command("auth")
@click.option("--host", help="Bind address (default: PORTCULLIS_HOST or 127.0.0.1).")
@click.option("--port", type=int, help="Port (default: PORTCULLIS_PORT or 8000).")
@workers_option
def serve_auth(host: str | None, port: int | None, workers: int) -> None:
    """Run the auth service."""
    from portcullis_shared.worker_metrics import prepare_worker_metrics  # noqa: PLC0415

    prepare_worker_metrics(workers)  # before the service's modules import prometheus-client
    from portcullis_cli.runner import load_settings  # noqa: PLC0415 - only this command needs it
    from portcullis_shared.serving import serve as serve_app  # noqa: PLC0415

    settings = load_settings(require_redis=True)  # checked once here; each worker reads them again
    serve_app(
        "portcullis_auth.http.app:serving_app",
        host=host or settings.server.host,
        port=port or settings.server.port,
        workers=workers,
        log_format=settings.observability.log_format,
    )


@serve.command("resource")
@click.option("--host", help="Bind address (default: PORTCULLIS_HOST or 127.0.0.1).")
@click.option("--port", type=int, help="Port (default: PORTCULLIS_PORT or 8001).")
@click.option(
    "--migrate/--no-migrate",
    "run_migrations",
    default=True,
    help="Migrate the posts database first (off where a job migrates it once for all).",
)
@workers_option
@click.pass_context
def serve_resource(
    ctx: click.Context, host: str | None, port: int | None, run_migrations: bool, workers: int
) -> None:
    """Run the posts service."""
    from portcullis_resource.cli import serve as resource_serve  # noqa: PLC0415 - imports no metrics

    ctx.invoke(resource_serve, host=host, port=port, run_migrations=run_migrations, workers=workers)
