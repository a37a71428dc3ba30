"""One wrk run of one load, pinned to the load core, and the figure read from what wrk
printed; any error answer makes the run, and so the bench, fail."""

from __future__ import annotations

import json
import re
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bench.cores import LOAD_CORE, pinned
from bench.figures import Figure
from bench.settings import CONNECTIONS
from bench.tokens import Tokens


@dataclass(frozen=True)
class Load:
    """One wrk target: a URL, its headers and, for a POST, its form body; with `tokens`,
    each request carries the next of them instead of a fixed Authorization header."""

    url: str
    headers: dict[str, str] = field(default_factory=dict)
    post: str | None = None
    connections: int = CONNECTIONS
    tokens: Tokens | None = None
    many_addresses: bool = False
    """Each request from another address, in `X-Forwarded-For` (the server must trust
    the load's own address as a proxy): many callers rather than one."""

    @classmethod
    def with_new_tokens(cls, url: str, tokens: list[str]) -> Load:
        return cls(url, {"Authorization": f"Bearer {tokens[0]}"}, tokens=Tokens(tokens))


def probe(load: Load) -> None:
    """One request before the load: a figure made of error answers would be worthless."""
    answer = httpx.request(
        "POST" if load.post is not None else "GET",
        load.url,
        headers={**load.headers, "Content-Type": "application/x-www-form-urlencoded"},
        content=load.post,
        timeout=30,
    )
    if answer.status_code >= 300:
        raise RuntimeError(f"{load.url} answered {answer.status_code}: {answer.text[:200]}")


def wrk_once(load: Load, seconds: int) -> Figure:
    """One wrk run; any error answer or socket error discards the whole bench."""
    output = _wrk(load, seconds)
    # Anchored: a "78.50%" in the thread stats must not pass for the 50th percentile.
    if re.search(r"^\s+50%\s+[\d.]+(us|ms|s)\s*$", output, re.MULTILINE) is None:
        raise RuntimeError(f"wrk could not measure {load.url}:\n{output}")
    rps = float(_printed(r"Requests/sec:\s+([\d.]+)", output))
    p50 = _ms(_printed(r"^\s+50%\s+(\S+)", output))
    p99 = _ms(_printed(r"^\s+99%\s+(\S+)", output))
    for failure in ("Non-2xx or 3xx responses", "Socket errors"):
        if failure in output:
            raise RuntimeError(f"errors while loading {load.url}; no figure:\n{output}")
    if load.tokens is not None:
        # Requests still in flight at the end were given their tokens too.
        sent = int(_printed(r"(\d+) requests in", output))
        load.tokens.sent += sent + load.connections
    return Figure(rps, p50, p99)


def wrk_flood(load: Load, seconds: int) -> Flood:
    """One wrk run of a load whose requests may be refused: how many were sent and refused."""
    output = _wrk(load, seconds)
    refused = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    return Flood(
        requests=int(_printed(r"(\d+) requests in", output)),
        refused=int(refused.group(1)) if refused else 0,
        rps=float(_printed(r"Requests/sec:\s+([\d.]+)", output)),
    )


@dataclass(frozen=True)
class Flood:
    requests: int
    refused: int
    """Answered 4xx or 5xx."""
    rps: float


def _wrk(load: Load, seconds: int) -> str:
    """What wrk printed for one run of `load`."""
    # A private directory (mode 0700: the script may hold a password), removed whatever happens.
    with tempfile.TemporaryDirectory(prefix="portcullis-wrk-") as scratch:
        lines = []
        if load.post is not None:
            lines.append(f'wrk.method = "POST"\nwrk.body = {json.dumps(load.post)}\n')
            lines.append('wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"\n')
        for name, value in load.headers.items():
            lines.append(f"wrk.headers[{json.dumps(name)}] = {json.dumps(value)}\n")
        if load.tokens is not None:
            token_file = Path(scratch) / "tokens.txt"
            token_file.write_text("\n".join(load.tokens.values) + "\n")
            lines.append(
                _LUA_ROTATING_AUTHORIZATION % (json.dumps(str(token_file)), load.tokens.sent)
            )
        if load.many_addresses:
            lines.append(_LUA_MANY_ADDRESSES)
        script = Path(scratch) / "load.lua"
        script.write_text("".join(lines))
        return subprocess.run(
            [
                *pinned(LOAD_CORE),
                "wrk",
                "-t1",
                f"-c{load.connections}",
                f"-d{seconds}s",
                "--timeout",
                "30s",  # password logins queue for the argon2 thread: seconds, not errors
                "--latency",
                "-s",
                str(script),
                load.url,
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout


_LUA_ROTATING_AUTHORIZATION = """
local tokens = {}
for line in io.lines(%s) do tokens[#tokens + 1] = "Bearer " .. line end
local sent = %d
request = function()
  sent = sent + 1
  return wrk.format(nil, nil, {["Authorization"] = tokens[(sent - 1) %% #tokens + 1]})
end
"""


_LUA_MANY_ADDRESSES = """
local counter = 0
request = function()
  counter = counter + 1
  -- wrk.format takes this table instead of wrk.headers: carry those over.
  local headers = {}
  for name, value in pairs(wrk.headers) do headers[name] = value end
  headers["X-Forwarded-For"] = string.format(
    "10.%d.%d.%d", math.floor(counter / 65536) % 256, math.floor(counter / 256) % 256, counter % 256)
  return wrk.format(nil, nil, headers)
end
"""


def _printed(pattern: str, output: str) -> str:
    """The first group of `pattern` in wrk's output, `^` matching at each line's start."""
    found = re.search(pattern, output, re.MULTILINE)
    if found is None:
        raise RuntimeError(f"wrk printed nothing matching {pattern!r}:\n{output}")
    return found.group(1)


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def _ms(value: str) -> float:
    found = re.match(r"([\d.]+)(us|ms|s)", value)
    if found is None:
        raise RuntimeError(f"wrk printed a latency of {value!r}")
    number, unit = found.groups()
    return float(number) * _UNITS[unit]
