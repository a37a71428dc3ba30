"""The load for refresh-token rotation: wrk cannot send each request the refresh token the
last answer gave, so asyncio chains on the load core do, one connection each."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import time

import httpx

from bench.figures import Figure


class RefreshChain:
    """One keep-alive HTTP/1.1 connection rotating one refresh token, written by hand:
    httpx spent more CPU per request than the auth service does, so the load core,
    not the server, set the pace."""

    def __init__(self, url: str, auth: tuple[str, str], token: str) -> None:
        parts = httpx.URL(url)
        self.host, self.port, self.path = parts.host, parts.port or 80, parts.raw_path.decode()
        self.basic = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        self.token = token
        self.rotations = 0

    async def run_until(self, stop: float) -> None:
        reader, writer = await asyncio.open_connection(self.host, self.port)
        try:
            while time.monotonic() < stop:
                body = f"grant_type=refresh_token&refresh_token={self.token}".encode()
                writer.write(
                    f"POST {self.path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
                    f"Authorization: Basic {self.basic}\r\n"
                    "Content-Type: application/x-www-form-urlencoded\r\n"
                    f"Content-Length: {len(body)}\r\n\r\n".encode()
                    + body
                )
                head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
                status = int(head.split(" ", 2)[1])
                length = re.search(r"(?i)content-length:\s*(\d+)", head)
                if length is None:
                    raise RuntimeError(f"a refresh answer had no Content-Length: {head!r}")
                answer = await reader.readexactly(int(length.group(1)))
                if status != 200:
                    raise RuntimeError(f"a refresh chain broke: {status} {answer[:200]!r}")
                self.token = json.loads(answer)["refresh_token"]
                self.rotations += 1
        finally:
            writer.close()


class RefreshChains:
    """Each chain rotates its own refresh token as fast as the server answers; any error
    answer discards the bench."""

    def __init__(self, token_url: str, auth: tuple[str, str], first_tokens: list[str]) -> None:
        self.chains = [RefreshChain(token_url, auth, token) for token in first_tokens]

    def run(self, seconds: int) -> Figure:
        return asyncio.run(self._run(seconds))

    async def _run(self, seconds: int) -> Figure:
        before = sum(chain.rotations for chain in self.chains)
        start = time.monotonic()
        await asyncio.gather(*(chain.run_until(start + seconds) for chain in self.chains))
        return Figure(
            (sum(chain.rotations for chain in self.chains) - before) / (time.monotonic() - start)
        )
