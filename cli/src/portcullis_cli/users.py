"""`portcullis user`: users. Each change that lowers trust revokes the user's tokens and
ends their sign-ins to the auth service's pages."""

from __future__ import annotations

import json
import sys

import click

from portcullis_auth.security.passwords import PasswordHasher
from portcullis_auth.services.unit_of_work import UnitOfWork
from portcullis_auth.services.users import UserService
from portcullis_auth.settings import AuthSettings
from portcullis_cli.runner import friendly_errors, run


def read_password(from_stdin: bool) -> str:
    if from_stdin or not sys.stdin.isatty():
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    if not password:
        raise click.ClickException("no password given")
    return password


def _users(uow: UnitOfWork) -> UserService:
    return UserService(uow.session, PasswordHasher())


@click.group()
def user() -> None:
    """Users."""


@user.command("create")
@click.argument("email")
@click.option("--admin", is_flag=True, help="Give the user the admin role.")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@click.option("--json", "as_json", is_flag=True)
@friendly_errors
def user_create(email: str, admin: bool, password_stdin: bool, as_json: bool) -> None:
    """Create a user; the password comes from a prompt or standard input."""
    password = read_password(password_stdin)

    async def work(uow: UnitOfWork, _: AuthSettings) -> dict[str, object]:
        created = await _users(uow).create(email, password, is_admin=admin)
        return {"id": str(created.id), "email": created.email, "admin": created.is_admin}

    data = run(work)
    if as_json:
        click.echo(json.dumps(data, indent=2))
    else:
        click.echo(
            f"created user {data['email']} ({data['id']}){' with the admin role' if admin else ''}"
        )


@user.command("set-password")
@click.argument("email")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@friendly_errors
def user_set_password(email: str, password_stdin: bool) -> None:
    """Set a new password; the user's tokens and sign-ins end."""
    password = read_password(password_stdin)

    async def work(uow: UnitOfWork, _: AuthSettings) -> None:
        await _users(uow).set_password(email, password, uow.revocations)

    run(work)
    click.echo(f"password of {email} changed; its tokens and sign-ins are ended")


@user.command("set-admin")
@click.argument("email")
@click.option("--admin/--no-admin", default=True, help="Grant (default) or remove the admin role.")
@friendly_errors
def user_set_admin(email: str, admin: bool) -> None:
    """Grant or remove the admin role; removing it ends the user's tokens and sign-ins."""

    async def work(uow: UnitOfWork, _: AuthSettings) -> None:
        await _users(uow).set_admin(email, admin, uow.revocations)

    run(work)
    click.echo(
        f"{email} {'is' if admin else 'is no longer'} an admin"
        + ("" if admin else "; its tokens and sign-ins are ended")
    )


@user.command("disable")
@click.argument("email")
@friendly_errors
def user_disable(email: str) -> None:
    """Disable a user: no more logins, every token and sign-in ended."""

    async def work(uow: UnitOfWork, _: AuthSettings) -> None:
        await _users(uow).disable(email, uow.revocations)

    run(work)
    click.echo(f"disabled {email}; its tokens and sign-ins are ended")


@user.command("revoke-tokens")
@click.argument("email")
@friendly_errors
def user_revoke_tokens(email: str) -> None:
    """Revoke every token the user holds and end their sign-ins."""

    async def work(uow: UnitOfWork, _: AuthSettings) -> None:
        await _users(uow).revoke_tokens(email, uow.revocations)

    run(work)
    click.echo(f"revoked every token of {email} and ended its sign-ins")
