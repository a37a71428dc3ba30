"""uvicorn's HTTP protocol, writing a response's head and body in one send: what the
services were served with before Granian, kept here only so that `make bench` can
measure it beside the servers (it subclasses a private uvicorn class; nothing that
ships uses it).

uvicorn writes a response's status line and headers as soon as the app sends
`http.response.start`, and its body with the next message: two `send()` calls
per response. Over TCP each one runs the network stack (on loopback, the
receiver's side too); in `make bench`, joining them raised client-credentials
throughput by about 8 %.

`OneWriteHttpToolsProtocol` gives uvicorn a transport that holds a write back
until the next one and then writes both together. Litestar sends a response's
start and body in one step of its task, so they leave as one. A write left
alone (a HEAD answer, uvicorn's own error answers, the last chunk of a stream)
is written on the event loop's next turn, or at once when the connection is
closed, or when the peer stops sending and the transport would close itself.
Bytes go out in the order written, unchanged. WebSocket upgrades are not
served (`ws="none"`): uvicorn would hand this transport to the WebSocket
protocol.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

_Bytes = bytes | bytearray | memoryview


class _WriteJoiningTransport(asyncio.Transport):
    """A transport passing everything on to the socket's, but each odd write only
    with the next one (or on the loop's next turn)."""

    __slots__ = ("_held", "_loop", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self._transport = transport
        self._loop = loop
        self._held: bytes | None = None

    def write(self, data: _Bytes) -> None:
        held = self._held
        if held is None:
            # A copy unless immutable: the writer may reuse its buffer once this returns.
            self._held = data if type(data) is bytes else bytes(data)
            self._loop.call_soon(self.flush)
        else:
            self._held = None
            self._transport.writelines((held, data))  # one send, no copy (uvloop)

    def writelines(self, list_of_data: Iterable[_Bytes]) -> None:
        self.write(b"".join(list_of_data))

    def flush(self) -> None:
        """Write what is held, if anything."""
        held = self._held
        if held is not None:
            self._held = None
            self._transport.write(held)

    def discard(self) -> None:
        """Forget what is held: the connection is gone."""
        self._held = None

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    def can_write_eof(self) -> bool:
        return self._transport.can_write_eof()

    def abort(self) -> None:
        self._held = None
        self._transport.abort()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._transport.get_extra_info(name, default)

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._transport.set_protocol(protocol)

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._transport.get_protocol()

    def is_reading(self) -> bool:
        return self._transport.is_reading()

    def pause_reading(self) -> None:
        self._transport.pause_reading()

    def resume_reading(self) -> None:
        self._transport.resume_reading()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._transport.set_write_buffer_limits(high, low)

    def get_write_buffer_size(self) -> int:
        held = self._held
        return self._transport.get_write_buffer_size() + (0 if held is None else len(held))

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self._transport.get_write_buffer_limits()


class OneWriteHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol on a transport that joins each pair of writes.

    It also tells every request in flight that its connection is lost: uvicorn
    tells only the newest, so a request with another pipelined behind it never
    learnt that its caller had gone (and work dropped for gone callers ran).
    """

    _joining: _WriteJoiningTransport
    _superseded: list[Any]
    """Requests still in flight with a pipelined one queued behind them."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._joining = _WriteJoiningTransport(transport, self.loop)
        self._superseded = []
        super().connection_made(self._joining)

    def on_headers_complete(self) -> None:
        running = self.cycle
        super().on_headers_complete()
        if running is not None and running is not self.cycle and not running.response_complete:
            self._superseded.append(running)

    def on_response_complete(self) -> None:
        self._superseded = [cycle for cycle in self._superseded if not cycle.response_complete]
        super().on_response_complete()

    def eof_received(self) -> None:
        # The peer sends no more and the socket's transport closes itself next,
        # without going through ours: what is held goes first.
        self._joining.flush()
        super().eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self._joining.discard()  # nowhere to send it
        for cycle in self._superseded:
            if not cycle.response_complete:
                cycle.disconnected = True
            cycle.message_event.set()
        self._superseded = []
        super().connection_lost(exc)
