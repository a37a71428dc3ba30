"""`portcullis serve auth|resource`."""

from __future__ import annotations

import click

from portcullis_cli.runner import load_settings


@click.group()
def serve() -> None:
    """Run a service."""


@serve.command("auth")
@click.option("--host", help="Bind address (default: PORTCULLIS_HOST or 127.0.0.1).")
@click.option("--port", type=int, help="Port (default: PORTCULLIS_PORT or 8000).")
def serve_auth(host: str | None, port: int | None) -> None:
    """Run the auth service."""
    from portcullis_auth.http.app import create_app  # noqa: PLC0415 - only serving needs it
    from portcullis_shared.serving import serve as serve_app  # noqa: PLC0415

    settings = load_settings()
    serve_app(
        create_app(settings),
        host=host or settings.server.host,
        port=port or settings.server.port,
    )


@serve.command("resource")
@click.option("--host", help="Bind address (default: PORTCULLIS_HOST or 127.0.0.1).")
@click.option("--port", type=int, help="Port (default: PORTCULLIS_PORT or 8001).")
@click.pass_context
def serve_resource(ctx: click.Context, host: str | None, port: int | None) -> None:
    """Run the posts service (migrating its database first)."""
    from portcullis_resource.cli import serve as resource_serve  # noqa: PLC0415

    ctx.invoke(resource_serve, host=host, port=port, run_migrations=True)
