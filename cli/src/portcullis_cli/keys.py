"""`portcullis keys`: signing keys."""

from __future__ import annotations

import click

from portcullis_auth.keys.sealing import KeySealer, UnsealError
from portcullis_auth.keys.service import KeyInfo, SigningKeyService
from portcullis_auth.services.unit_of_work import UnitOfWork
from portcullis_auth.settings import AuthSettings
from portcullis_cli.runner import friendly_errors, run


def _service(uow: UnitOfWork, settings: AuthSettings) -> SigningKeyService:
    return SigningKeyService(
        uow.session, KeySealer(settings.secret_key, settings.secret_key_previous)
    )


@click.group()
def keys() -> None:
    """Signing keys."""


@keys.command("generate")
def keys_generate() -> None:
    """Add a signing key that signs at once (first key, or emergency replacement)."""

    async def work(uow: UnitOfWork, settings: AuthSettings) -> str:
        return (await _service(uow, settings).generate(settings.tokens.signing_algorithm)).kid

    click.echo(f"created signing key {run(work)}")


@keys.command("rotate")
@click.option(
    "--activate-in",
    type=click.IntRange(min=0),
    help="Seconds until the new key signs (default: the JWKS max-age, 30 s at least, and "
    "60 s; never less than that and 50 s, by when every auth process has read it).",
)
@friendly_errors
def keys_rotate(activate_in: int | None) -> None:
    """Add a key that starts signing once every JWKS cache has seen it."""

    async def work(uow: UnitOfWork, settings: AuthSettings) -> tuple[str, str]:
        tokens = settings.tokens
        key = await _service(uow, settings).rotate(
            tokens.signing_algorithm, tokens.jwks_max_age, activate_in
        )
        return key.kid, key.activates_at.isoformat()

    kid, activates_at = run(work)
    click.echo(f"created signing key {kid}; it signs from {activates_at}")


@keys.command("list")
def keys_list() -> None:
    """List signing keys and their state."""

    async def work(uow: UnitOfWork, settings: AuthSettings) -> list[KeyInfo]:
        return await _service(uow, settings).describe(settings.tokens.max_token_ttl)

    for info in run(work):
        click.echo(
            f"{info.kid}  {info.algorithm:6} {info.state:9} "
            f"activates {info.activates_at.isoformat()}"
        )


@keys.command("reencrypt")
def keys_reencrypt() -> None:
    """Seal every signing key under PORTCULLIS_SECRET_KEY (opened under it or under
    PORTCULLIS_SECRET_KEY_PREVIOUS): the last step of rotating the secret key."""

    async def work(uow: UnitOfWork, settings: AuthSettings) -> int:
        return await _service(uow, settings).reencrypt()

    try:
        count = run(work)
    except UnsealError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(
        f"sealed {count} signing keys under PORTCULLIS_SECRET_KEY; "
        "PORTCULLIS_SECRET_KEY_PREVIOUS is no longer needed"
    )
