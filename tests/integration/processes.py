"""Running a Portcullis service as a real process, and stopping it."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import pytest
import requests

CLI_TIMEOUT = 120.0
STARTUP_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0


def executable(name: str) -> str:
    """A console script installed beside this interpreter."""
    path = Path(sys.executable).parent / name
    assert path.is_file(), f"{name} is not installed at {path}"
    return str(path)


class ServiceProcess:
    """`command` running with its output in `log_path`, healthy once `/healthz` answers."""

    def __init__(
        self,
        command: Sequence[str],
        *,
        base_url: str,
        environ: dict[str, str],
        cwd: Path,
        log_path: Path,
    ) -> None:
        self.command = list(command)
        self.base_url = base_url
        self.environ = environ
        self.cwd = cwd
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None
        self._log_file: IO[bytes] | None = None

    def start(self) -> None:
        assert self.process is None, "already started"
        self._log_file = self.log_path.open("ab")
        self.process = subprocess.Popen(
            self.command,
            env=self.environ,
            cwd=self.cwd,
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
        )
        self._wait_until_healthy()

    def _wait_until_healthy(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + STARTUP_TIMEOUT
        last_error = "no answer yet"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(
                    f"{' '.join(self.command)} exited with {self.process.returncode}:\n{self.output()}"
                )
            try:
                response = requests.get(f"{self.base_url}/healthz", timeout=1)
            except requests.RequestException as exc:
                last_error = type(exc).__name__
            else:
                if response.status_code == 200:
                    return
                last_error = f"HTTP {response.status_code}"
            time.sleep(0.1)
        self.stop()
        pytest.fail(
            f"{' '.join(self.command)} did not answer /healthz within {STARTUP_TIMEOUT:.0f} s "
            f"({last_error}):\n{self.output()}"
        )

    def stop(self) -> None:
        """Terminate the process (kill it when it does not stop); safe to call twice."""
        process, self.process = self.process, None
        if process is not None:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=STOP_TIMEOUT)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=STOP_TIMEOUT)
            else:
                process.wait()
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def output(self) -> str:
        if self._log_file is not None:
            self._log_file.flush()
        return (
            self.log_path.read_text(encoding="utf-8", errors="replace")
            if self.log_path.exists()
            else ""
        )


def free_port() -> int:
    """A port nothing listens on right now (the OS picks it for a socket bound to 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def portcullis_executable() -> str:
    """The `portcullis` script installed beside this interpreter."""
    return executable("portcullis")


@dataclass(frozen=True, slots=True)
class ClientCredentials:
    client_id: str
    client_secret: str


@dataclass(frozen=True, slots=True)
class Cli:
    """Runs `portcullis ...` as a subprocess in the service's environment."""

    environ: dict[str, str]
    cwd: Path
    executable: str | None = None
    """Another installation's `portcullis` (default: the one beside this interpreter)."""

    def run(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        completed = self.attempt(*args, stdin=stdin)
        assert completed.returncode == 0, (
            f"portcullis {' '.join(args)} exited {completed.returncode}\n"
            f"stdout:\n{completed.stdout}\nstderr:\n{completed.stderr}"
        )
        return completed

    def attempt(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        """`portcullis ...`, whether or not it succeeds."""
        return subprocess.run(
            [self.executable or portcullis_executable(), *args],
            input=stdin,
            capture_output=True,
            text=True,
            env=self.environ,
            cwd=self.cwd,
            timeout=CLI_TIMEOUT,
            check=False,
        )

    def json(self, *args: str, stdin: str | None = None) -> Any:
        return json.loads(self.run(*args, "--json", stdin=stdin).stdout)
