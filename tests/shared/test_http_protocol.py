"""The serve commands' HTTP protocol: one write per response, bytes unchanged.

A real uvicorn server on a real socket, on asyncio's loop and on uvloop (which
the services run on); the only stand-in is a transport between the protocol
and the socket's own that keeps a copy of each write passing through it. One
test answers through a Litestar app, as the services do.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any

import pytest
import uvicorn
import uvloop
from litestar import Litestar, get

from portcullis_shared.http_protocol import OneWriteHttpToolsProtocol
from portcullis_shared.serving import uvicorn_options

LOOPS = pytest.mark.parametrize(
    "new_loop", [asyncio.new_event_loop, uvloop.new_event_loop], ids=["asyncio", "uvloop"]
)


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    if scope["path"] == "/stream":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for part in (b"one,", b"two,", b"three"):
            await send({"type": "http.response.body", "body": part, "more_body": True})
            await asyncio.sleep(0.01)  # wall time: a stream's parts come apart, not in one turn
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


class _Copying(asyncio.Transport):
    """Passes writes on to the socket's transport, keeping a copy of each."""

    def __init__(self, transport: asyncio.Transport, writes: list[bytes]) -> None:
        super().__init__()
        self._transport = transport
        self.writes = writes

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.writes.append(bytes(data))
        self._transport.write(data)

    def writelines(self, list_of_data: Any) -> None:
        self.write(b"".join(list_of_data))

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


def _copying_protocol(writes: list[bytes]) -> type[OneWriteHttpToolsProtocol]:
    class Copying(OneWriteHttpToolsProtocol):
        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(_Copying(transport, writes))

    return Copying


@asynccontextmanager
async def serving(asgi_app: Any, writes: list[bytes]) -> AsyncIterator[int]:
    """A uvicorn server with the serve commands' options on a port of its own."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    server = uvicorn.Server(
        uvicorn.Config(
            asgi_app,
            **{
                **uvicorn_options(),
                "http": _copying_protocol(writes),
                "lifespan": "off",
                "log_level": "warning",
                "timeout_keep_alive": 60,  # a close by time-out must not stand in for a flush
            },
        )
    )
    task = asyncio.create_task(server.serve(sockets=[listener]))
    async with asyncio.timeout(10):
        while not server.started:  # uvicorn sets a flag, not an event
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
    try:
        yield int(listener.getsockname()[1])
    finally:
        server.should_exit = True
        await task
        listener.close()


async def _exchange(
    port: int, request: bytes, *, until: bytes | None = None, half_close: bool = False
) -> bytes:
    """Send `request` and read until `until` arrives (within 2 s), or the server closes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        if half_close:
            writer.write_eof()
        answer = b""
        async with asyncio.timeout(2):
            while until is None or until not in answer:
                chunk = await reader.read(65536)
                if not chunk:
                    break
                answer += chunk
        return answer
    finally:
        writer.close()
        await writer.wait_closed()


def _run(
    new_loop: Callable[[], asyncio.AbstractEventLoop],
    scenario: Callable[[int, list[bytes]], Coroutine[Any, Any, None]],
    asgi_app: Any = app,
) -> None:
    async def main() -> None:
        writes: list[bytes] = []
        async with serving(asgi_app, writes) as port:
            await scenario(port, writes)

    with asyncio.Runner(loop_factory=new_loop) as runner:
        runner.run(main())


@LOOPS
def test_a_response_leaves_in_one_write(new_loop: Callable[[], asyncio.AbstractEventLoop]) -> None:
    async def scenario(port: int, writes: list[bytes]) -> None:
        answer = await _exchange(port, b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n", until=b"hello /a")
        assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
        assert answer.endswith(b"\r\n\r\nhello /a")
        assert [answer] == writes

    _run(new_loop, scenario)


@LOOPS
def test_a_head_answer_without_a_body_is_still_written(
    new_loop: Callable[[], asyncio.AbstractEventLoop],
) -> None:
    async def scenario(port: int, writes: list[bytes]) -> None:
        answer = await _exchange(port, b"HEAD /a HTTP/1.1\r\nHost: x\r\n\r\n", until=b"\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
        assert answer.endswith(b"content-length: 8\r\n\r\n")
        assert [answer] == writes

    _run(new_loop, scenario)


@LOOPS
def test_an_answer_to_a_peer_that_stopped_sending_is_written(
    new_loop: Callable[[], asyncio.AbstractEventLoop],
) -> None:
    async def scenario(port: int, writes: list[bytes]) -> None:
        answer = await _exchange(
            port, b"HEAD /a HTTP/1.1\r\nHost: x\r\n\r\n", until=b"\r\n\r\n", half_close=True
        )
        assert answer == b"".join(writes)

    _run(new_loop, scenario)


@LOOPS
def test_pipelined_requests_are_answered_in_order(
    new_loop: Callable[[], asyncio.AbstractEventLoop],
) -> None:
    async def scenario(port: int, writes: list[bytes]) -> None:
        answer = await _exchange(
            port,
            b"GET /first HTTP/1.1\r\nHost: x\r\n\r\nGET /second HTTP/1.1\r\nHost: x\r\n\r\n",
            until=b"hello /second",
        )
        assert answer.index(b"hello /first") < answer.index(b"HTTP/1.1", 10)
        assert answer.endswith(b"hello /second")
        assert len(writes) == 2

    _run(new_loop, scenario)


@LOOPS
def test_a_streamed_body_arrives_whole(new_loop: Callable[[], asyncio.AbstractEventLoop]) -> None:
    async def scenario(port: int, writes: list[bytes]) -> None:
        answer = await _exchange(
            port, b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n", until=b"0\r\n\r\n"
        )
        body = answer.split(b"\r\n\r\n", 1)[1]
        assert body == b"4\r\none,\r\n4\r\ntwo,\r\n5\r\nthree\r\n0\r\n\r\n"
        assert b"".join(writes) == answer
        assert len(writes) == 4  # the head joined to the first chunk

    _run(new_loop, scenario)


@LOOPS
def test_uvicorns_own_error_answer_is_written_before_it_closes(
    new_loop: Callable[[], asyncio.AbstractEventLoop],
) -> None:
    async def scenario(port: int, writes: list[bytes]) -> None:
        answer = await _exchange(port, b"NOT HTTP AT ALL\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 400 Bad Request\r\n")
        assert b"".join(writes) == answer

    _run(new_loop, scenario)


@get("/thing")
async def thing() -> dict[str, str]:
    return {"name": "x"}


def test_a_litestar_answer_leaves_in_one_write() -> None:
    """Litestar sends a response's start and body in one step of its task."""

    async def scenario(port: int, writes: list[bytes]) -> None:
        answer = await _exchange(
            port, b"GET /thing HTTP/1.1\r\nHost: x\r\n\r\n", until=b'{"name":"x"}'
        )
        assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
        assert [answer] == writes

    _run(uvloop.new_event_loop, scenario, Litestar([thing]))
