"""`portcullis dev`: the embedded default, one command from a fresh clone.

SQLite and in-process login throttling (Redis when PORTCULLIS_REDIS_URL is
set), bound to 127.0.0.1, data in one folder that survives restarts. The first
run installs itself and creates a demo user; every run prints the URLs and the
credentials to try. Not for production: it keeps the dev secrets in that folder.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from portcullis_auth.settings import AuthSettings
from portcullis_shared.environment import load_dotenv_file

DEMO_EMAIL = "demo@example.com"


@dataclass(frozen=True, slots=True)
class DevState:
    """What the dev folder remembers between runs."""

    folder: Path
    secret_key: str
    demo_password: str
    password_client_id: str | None = None
    password_client_secret: str | None = None

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
            folder=folder,
            secret_key=secrets.token_hex(32),
            demo_password=secrets.token_urlsafe(12),
        )
        state.save()
        return state


def dev_settings(state: DevState, port: int) -> AuthSettings:
    """Embedded defaults; any PORTCULLIS_* variable that is set still wins."""
    load_dotenv_file()
    database = state.folder.resolve() / "auth.db"
    environ = {
        "PORTCULLIS_ISSUER": f"http://127.0.0.1:{port}",
        "PORTCULLIS_DATABASE_URL": f"sqlite+aiosqlite:///{database}",
        "PORTCULLIS_SECRET_KEY": state.secret_key,
        "PORTCULLIS_HOST": "127.0.0.1",
        "PORTCULLIS_PORT": str(port),
        **{k: v for k, v in os.environ.items() if k.startswith("PORTCULLIS_")},
    }
    return AuthSettings.from_env(environ, require_redis=False)


def banner(state: DevState, settings: AuthSettings) -> str:
    issuer = settings.tokens.issuer
    lines = [
        "",
        "Portcullis dev stack (embedded defaults; not for production)",
        f"  auth service     {issuer}",
        f"  JWKS             {issuer}/.well-known/jwks.json",
        f"  metadata         {issuer}/.well-known/oauth-authorization-server",
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
            f"    -d grant_type=password -d username={DEMO_EMAIL} "
            f"-d password='{state.demo_password}'",
        ]
    return "\n".join([*lines, ""])
