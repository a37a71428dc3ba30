"""The serve commands' HTTP protocol: one write per response, bytes unchanged.

A real uvicorn server on a real socket; the only stand-in is a transport between
the protocol and the socket's own that counts the writes passing through it.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
import uvicorn

from portcullis_shared.http_protocol import OneWriteHttpToolsProtocol


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    if scope["path"] == "/stream":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for part in (b"one,", b"two,", b"three"):
            await send({"type": "http.response.body", "body": part, "more_body": True})
            await asyncio.sleep(0.01)
        await send({"type": "http.response.body", "body": b""})
        return
    body = f"hello {scope['path']}".encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain"), (b"content-length", b"%d" % len(body))],
        }
    )
    await send({"type": "http.response.body", "body": body})


class _Counting(asyncio.Transport):
    """Passes writes on to the socket's transport, keeping a copy of each."""

    def __init__(self, transport: asyncio.Transport, writes: list[bytes]) -> None:
        super().__init__()
        self._transport = transport
        self.writes = writes

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.writes.append(bytes(data))
        self._transport.write(data)

    def close(self) -> None:
        self._transport.close()

    def abort(self) -> None:
        self._transport.abort()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._transport.get_extra_info(name, default)

    def pause_reading(self) -> None:
        self._transport.pause_reading()

    def resume_reading(self) -> None:
        self._transport.resume_reading()

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size()


_written: list[bytes] = []


class _CountedProtocol(OneWriteHttpToolsProtocol):
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(_Counting(transport, _written))


@pytest.fixture
async def server_port() -> AsyncIterator[int]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    server = uvicorn.Server(
        uvicorn.Config(app, port=port, http=_CountedProtocol, lifespan="off", log_level="warning")
    )
    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 - uvicorn sets a flag, not an event
        await asyncio.sleep(0.01)
    _written.clear()
    yield port
    server.should_exit = True
    await task


async def _exchange(port: int, request: bytes, *, until: bytes | None = None) -> bytes:
    """Send `request` and read until `until` arrives, or the server closes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        answer = b""
        async with asyncio.timeout(5):
            while until is None or answer.count(until) < 1:
                chunk = await reader.read(65536)
                if not chunk:
                    break
                answer += chunk
        return answer
    finally:
        writer.close()


async def test_a_response_leaves_in_one_write(server_port: int) -> None:
    answer = await _exchange(server_port, b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n", until=b"hello /a")
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
    assert answer.endswith(b"\r\n\r\nhello /a")
    assert _written == [answer]


async def test_a_head_answer_without_a_body_is_still_written(server_port: int) -> None:
    answer = await _exchange(server_port, b"HEAD /a HTTP/1.1\r\nHost: x\r\n\r\n", until=b"\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
    assert answer.endswith(b"content-length: 8\r\n\r\n")
    assert _written == [answer]


async def test_pipelined_requests_are_answered_in_order(server_port: int) -> None:
    answer = await _exchange(
        server_port,
        b"GET /first HTTP/1.1\r\nHost: x\r\n\r\nGET /second HTTP/1.1\r\nHost: x\r\n\r\n",
        until=b"hello /second",
    )
    assert answer.index(b"hello /first") < answer.index(b"HTTP/1.1", 10)
    assert answer.endswith(b"hello /second")
    assert len(_written) == 2


async def test_a_streamed_body_arrives_whole(server_port: int) -> None:
    answer = await _exchange(
        server_port, b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n", until=b"0\r\n\r\n"
    )
    body = answer.split(b"\r\n\r\n", 1)[1]
    assert body == b"4\r\none,\r\n4\r\ntwo,\r\n5\r\nthree\r\n0\r\n\r\n"
    assert b"".join(_written) == answer


async def test_uvicorns_own_error_answer_is_written_before_it_closes(server_port: int) -> None:
    answer = await _exchange(server_port, b"NOT HTTP AT ALL\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert b"".join(_written) == answer
