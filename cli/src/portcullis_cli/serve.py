"""`portcullis serve auth|resource`: each imports only its own service."""

from __future__ import annotations

import click


@click.group()
def serve() -> None:
    """Run a service."""


@serve.command("auth")
@click.option("--host", help="Bind address (default: PORTCULLIS_HOST or 127.0.0.1).")
@click.option("--port", type=int, help="Port (default: PORTCULLIS_PORT or 8000).")
def serve_auth(host: str | None, port: int | None) -> None:
    """Run the auth service."""
    from portcullis_auth.http.app import create_app  # noqa: PLC0415 - only this command needs it
    from portcullis_cli.runner import load_settings  # noqa: PLC0415
    from portcullis_shared.serving import serve as serve_app  # noqa: PLC0415

    settings = load_settings(require_redis=True)
    serve_app(
        create_app(settings),
        host=host or settings.server.host,
        port=port or settings.server.port,
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
@click.pass_context
def serve_resource(
    ctx: click.Context, host: str | None, port: int | None, run_migrations: bool
) -> None:
    """Run the posts service."""
    from portcullis_resource.cli import serve as resource_serve  # noqa: PLC0415

    ctx.invoke(resource_serve, host=host, port=port, run_migrations=run_migrations)
