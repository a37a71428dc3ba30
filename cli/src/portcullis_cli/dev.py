"""`portcullis dev`: the whole stack in one process, one command from a fresh clone.

The auth service (port 8000) and the posts service (port 8001) run side by
side on SQLite, sharing the key ring and an in-process revocation list (Redis
when PORTCULLIS_REDIS_URL is set), bound to 127.0.0.1, with the playground
on. The first run installs itself and creates a demo user; every run prints
the URLs and the credentials to try. Data lives in one folder and survives
restarts. Not for production: that folder holds the dev secrets.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from portcullis_auth.db.migrate import upgrade
from portcullis_auth.security.passwords import PasswordHasher
from portcullis_auth.services.installation import install_defaults
from portcullis_auth.services.unit_of_work import UnitOfWork
from portcullis_auth.services.users import UserExistsError, UserService
from portcullis_auth.settings import AuthSettings
from portcullis_cli.install import installed_as_dict
from portcullis_cli.runner import run
from portcullis_shared.environment import SettingsError, load_dotenv_file

DEMO_EMAIL = "demo@example.com"


@dataclass(frozen=True, slots=True)
class DevState:
    """What the dev folder remembers between runs."""

    folder: Path
    secret_key: str
    demo_password: str
    password_client_id: str | None = None
    password_client_secret: str | None = None
    playground_client_id: str | None = None

    @property
    def state_file(self) -> Path:
        return self.folder / "dev.json"

    def save(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        data = {
            "secret_key": self.secret_key,
            "demo_password": self.demo_password,
            "password_client_id": self.password_client_id,
            "password_client_secret": self.password_client_secret,
            "playground_client_id": self.playground_client_id,
        }
        self.state_file.write_text(json.dumps(data, indent=2))
        self.state_file.chmod(0o600)

    @classmethod
    def load_or_create(cls, folder: Path) -> DevState:
        state_file = folder / "dev.json"
        if state_file.is_file():
            data = json.loads(state_file.read_text())
            return cls(folder=folder, **data)
        state = cls(
            folder=folder, secret_key=secrets.token_hex(32), demo_password=secrets.token_urlsafe(12)
        )
        state.save()
        return state


def _environ(defaults: dict[str, str], fixed: dict[str, str]) -> dict[str, str]:
    """Embedded defaults, then any PORTCULLIS_* variable that is set, then what this run fixes."""
    from_env = {k: v for k, v in os.environ.items() if k.startswith("PORTCULLIS_")}
    return {**defaults, **from_env, **fixed}


def dev_settings(state: DevState, port: int) -> AuthSettings:
    load_dotenv_file()
    database = state.folder.resolve() / "auth.db"
    return AuthSettings.from_env(
        _environ(
            {
                "PORTCULLIS_DATABASE_URL": f"sqlite+aiosqlite:///{database}",
                "PORTCULLIS_SECRET_KEY": state.secret_key,
                # No trusted proxy: every local caller comes from 127.0.0.1, so trusting
                # it would let any of them pick its address with X-Forwarded-For.
            },
            {
                "PORTCULLIS_ISSUER": f"http://127.0.0.1:{port}",
                "PORTCULLIS_HOST": "127.0.0.1",
                "PORTCULLIS_PORT": str(port),
            },
        ),
        require_redis=False,
    )


def resource_environ(state: DevState, auth: AuthSettings, port: int) -> dict[str, str]:
    database = state.folder.resolve() / "posts.db"
    return _environ(
        {
            "PORTCULLIS_AUDIENCE": "posts",
            "PORTCULLIS_PLAYGROUND": "on",
        },
        # These follow the auth service and this run, whatever the environment says.
        {
            "PORTCULLIS_ISSUER": auth.tokens.issuer,
            "PORTCULLIS_JWKS_URL": f"{auth.tokens.issuer}/.well-known/jwks.json",
            "PORTCULLIS_AUTH_URL": auth.tokens.issuer,
            "PORTCULLIS_DATABASE_URL": f"sqlite+aiosqlite:///{database}",
            "PORTCULLIS_PORT": str(port),
            "PORTCULLIS_PASSWORD_CLIENT_ID": state.password_client_id or "",
            "PORTCULLIS_PASSWORD_CLIENT_SECRET": state.password_client_secret or "",
            "PORTCULLIS_PLAYGROUND_CLIENT_ID": state.playground_client_id or "",
        },
    )


def banner(state: DevState, settings: AuthSettings, posts_url: str) -> str:
    issuer = settings.tokens.issuer
    lines = [
        "",
        "Portcullis dev stack (embedded defaults; not for production)",
        f"  auth service     {issuer}",
        f"  posts service    {posts_url}/api/posts",
        f"  playground       {posts_url}/playground",
        f"  data folder      {state.folder.resolve()}",
        f"  demo user        {DEMO_EMAIL} / {state.demo_password}",
    ]
    if state.password_client_id:
        lines += [
            f"  password client  {state.password_client_id} / {state.password_client_secret}",
            "",
            "Try:",
            f"  curl -s {issuer}/oauth/token -u '{state.password_client_id}:"
            f"{state.password_client_secret}' \\",
            f"    -d grant_type=password -d username={DEMO_EMAIL} -d password='{state.demo_password}'",
        ]
    return "\n".join([*lines, ""])


async def serve_both(settings: AuthSettings, resource_env: dict[str, str], posts_port: int) -> None:
    """Both services in this process, sharing keys and the revocation list."""
    # Only serving needs the servers and the apps (every other command starts faster).
    import uvicorn  # noqa: PLC0415

    from portcullis_auth.http.app import create_app  # noqa: PLC0415
    from portcullis_auth.runtime import AuthRuntime  # noqa: PLC0415
    from portcullis_resource.db.migrate import upgrade_async as upgrade_posts  # noqa: PLC0415
    from portcullis_resource.http.app import create_app as create_posts_app  # noqa: PLC0415
    from portcullis_resource.settings import ResourceSettings  # noqa: PLC0415
    from portcullis_shared.plugin import PortcullisGuard  # noqa: PLC0415
    from portcullis_shared.revocation import MemoryRevocationList  # noqa: PLC0415
    from portcullis_shared.serving import tune_garbage_collector  # noqa: PLC0415

    revocations = MemoryRevocationList()
    runtime = AuthRuntime.create(settings, local_revocations=revocations)
    posts_settings = ResourceSettings.from_env(resource_env, embedded=True)
    await upgrade_posts(posts_settings.database_url)
    guard = PortcullisGuard(
        posts_settings.guard,
        keys=runtime.keyring,  # the same process: no JWKS round trip needed
        revocations=None if posts_settings.guard.redis_url else revocations,
    )
    # uvicorn serves two apps in one event loop, which the serve commands' server cannot.
    # No access log (query strings can carry credentials), no proxy headers (each service
    # judges X-Forwarded-For by its own setting), no WebSockets.
    common: dict[str, Any] = {
        "host": "127.0.0.1",
        "access_log": False,
        "proxy_headers": False,
        "log_level": "info",
        "ws": "none",
    }
    servers = [
        uvicorn.Server(
            uvicorn.Config(create_app(runtime=runtime), port=settings.server.port, **common)
        ),
        uvicorn.Server(
            uvicorn.Config(create_posts_app(posts_settings, guard=guard), port=posts_port, **common)
        ),
    ]
    tune_garbage_collector()
    await asyncio.gather(*(server.serve() for server in servers))


@click.command()
@click.option("--port", type=int, default=8000, show_default=True, help="Auth service port.")
@click.option("--posts-port", type=int, default=8001, show_default=True, help="Posts service port.")
@click.option(
    "--data",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path(".portcullis"),
    show_default=True,
    help="Folder for the embedded databases and dev secrets.",
)
def dev(port: int, posts_port: int, data: Path) -> None:
    """Run the whole stack on embedded defaults: SQLite, 127.0.0.1, playground on."""
    state = DevState.load_or_create(data)
    try:
        settings = dev_settings(state, port)
    except SettingsError as exc:
        raise click.ClickException(f"configuration: {exc}") from None
    upgrade(settings.database.url)

    async def first_run(uow: UnitOfWork, settings: AuthSettings) -> dict[str, object]:
        created = installed_as_dict(await install_defaults(uow.session, settings))
        with contextlib.suppress(UserExistsError):
            await UserService(uow.session, PasswordHasher()).create(DEMO_EMAIL, state.demo_password)
        return created

    created = run(first_run, settings)
    password_client, playground_client = (
        created.get("password_client"),
        created.get("playground_client"),
    )
    if isinstance(password_client, dict):
        state = dataclasses.replace(
            state,
            password_client_id=str(password_client["client_id"]),
            password_client_secret=str(password_client["client_secret"]),
        )
    if isinstance(playground_client, dict):
        state = dataclasses.replace(state, playground_client_id=str(playground_client["client_id"]))
    state.save()
    click.echo(banner(state, settings, f"http://127.0.0.1:{posts_port}"))
    try:
        environ = resource_environ(state, settings, posts_port)
        asyncio.run(serve_both(settings, environ, posts_port))
    except SettingsError as exc:
        raise click.ClickException(f"configuration: {exc}") from None
