"""The `portcullis` command line as the bench runs it: to install an auth service on its
database and to create the user and the clients the loads log in with."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import TypedDict

from bench.settings import BIN

Client = tuple[str, str]
"""A client's id and secret."""

MACHINE_CLIENT = (
    "client",
    "create",
    "bench-machine",
    "--grant",
    "client_credentials",
    "--scope",
    "read-posts",
    "--json",
)


class _CreatedClient(TypedDict):
    client_id: str
    client_secret: str


class _Installed(TypedDict):
    password_client: _CreatedClient


class PortcullisCli:
    """Runs `portcullis` in `workdir`, each command on the environment of the auth service
    it acts on."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir

    def run(self, *args: str, env: dict[str, str], stdin: str | None = None) -> str:
        done = subprocess.run(
            [str(BIN / "portcullis"), *args],
            env=env,
            cwd=self.workdir,
            input=stdin,
            capture_output=True,
            text=True,
            check=True,
        )
        return done.stdout

    def install(self, env: dict[str, str]) -> Client:
        """Install, and the password client it created."""
        installed: _Installed = json.loads(self.run("install", "--json", env=env))
        return _client(installed["password_client"])

    def create_user(self, email: str, password: str, env: dict[str, str]) -> None:
        self.run(
            "user", "create", email, "--password-stdin", "--json", env=env, stdin=password + "\n"
        )

    def create_machine_client(self, env: dict[str, str]) -> Client:
        """A client-credentials client that may read posts."""
        created: _CreatedClient = json.loads(self.run(*MACHINE_CLIENT, env=env))
        return _client(created)


def _client(created: _CreatedClient) -> Client:
    return created["client_id"], created["client_secret"]
