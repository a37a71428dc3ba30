"""Server processes the bench starts: pinned to the server core, waited for until healthy,
watched for their CPU time (side-by-side shares, idling) and peak memory, and stopped."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench.cores import SERVER_CORE, pinned


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    name: str
    command: list[str]
    environ: dict[str, str]
    url: str
    log: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [*pinned(SERVER_CORE), *self.command],
                env=self.environ,
                # The bench's own directory: a developer's .env in the repository's
                # root must not change what the services run with.
                cwd=self.log.parent,
                stdout=log,
                stderr=log,
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited; see {self.log}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} did not start; see {self.log}")

    def wait_for_log(self, pattern: str, timeout: float = 120) -> re.Match[str]:
        """The first line of the server's log matching `pattern`, waiting for it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = re.search(pattern, self.log.read_text(errors="replace"))
            if found:
                return found
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} never logged {pattern!r}; see {self.log}")

    def cpu_seconds(self) -> float:
        """CPU time of the server's processes: a server may run its app in workers."""
        self._check_running()
        ticks = 0
        for pid in self._processes():
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue  # gone since it was listed
            ticks += int(fields[11]) + int(fields[12])
        return ticks / os.sysconf("SC_CLK_TCK")

    def _check_running(self) -> None:
        assert self.process is not None
        if self.process.poll() is not None:
            raise RuntimeError(f"{self.name} exited ({self.process.returncode}); see {self.log}")

    def _processes(self) -> list[int]:
        """The server's process and its descendants."""
        assert self.process is not None
        parents: dict[int, int] = {}
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    stat = (entry / "stat").read_text()
                except OSError:
                    continue
                parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
        tree = [self.process.pid]
        for pid in tree:
            tree.extend(child for child, parent in parents.items() if parent == pid)
        return tree

    def wait_until_idle(self, timeout: float = 30) -> None:
        """Until the server uses under a tenth of a core: the requests a load left in
        flight (logins queued for the argon2 thread: seconds of work) are done."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            before = self.cpu_seconds()
            time.sleep(0.25)
            if self.cpu_seconds() - before < 0.025:
                return
        raise RuntimeError(f"{self.name} stayed busy after its load; see {self.log}")

    def rss_mib(self) -> float:
        """The sum of the resident memory of the server's processes now."""
        return self._memory_mib("VmRSS")

    def peak_rss_mib(self) -> float:
        """The sum of the peak resident memory of the server's processes."""
        return self._memory_mib("VmHWM")

    def _memory_mib(self, field: str) -> float:
        self._check_running()
        kib = 0
        for pid in self._processes():
            try:
                status = Path(f"/proc/{pid}/status").read_text()
            except OSError:
                continue
            found = re.search(field + r":\s+(\d+) kB", status)
            if found is not None:
                kib += int(found.group(1))
        return round(kib / 1024, 1)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
