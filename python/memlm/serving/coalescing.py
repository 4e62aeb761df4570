"""One write per response: uvicorn's HTTP protocol over a transport that coalesces the writes of one event-loop
iteration.

uvicorn writes a response's head as soon as the application starts it and its body when the application sends it:
two ``send`` system calls and two TCP segments for every short response, so the client wakes up twice. On a loopback
connection each write costs the sender the receiver's TCP processing too; one write instead of two took a fifth off
the CPU time per completion of ``bench.serve_load`` (server and clients: 431 to 341 µs) and raised ``/health``'s
requests/s from 5.9k to 7-12k.

:class:`CoalescingTransport` rules: bytes written in one iteration of the event loop are kept, in order, and handed to
the real transport as one write at the start of the next iteration (``loop.call_soon``), at once when they reach
the transport's high-water mark (so that its flow control, which pauses the writer, sees them), and at once when the
transport is closed or asked to write EOF (so nothing written is lost or reordered); ``abort`` drops them, as
aborting drops the real transport's buffer, and so does a write after the connection is gone. A response whose parts
are sent in one iteration (any short response: Starlette's ``Response`` sends head and body back to back) goes out
in one write; a streamed one goes out piece by piece as before, each piece an iteration later at most. The cost: a
response waits for the rest of its iteration's work (other requests answered on the event loop then, each well
under a millisecond) before it is sent. :class:`HttpProtocol` is uvicorn's httptools protocol on such a transport
(given as ``uvicorn.Config(http=HttpProtocol)``).
"""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class CoalescingTransport:
    """``transport``, its writes of one event-loop iteration made one (see the module doc); anything else is the
    transport's own."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop):
        self._transport, self._loop = transport, loop
        self._pending: list[bytes] = []
        self._pending_bytes = 0

    def __getattr__(self, name: str) -> object:
        return getattr(self._transport, name)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Keeps ``data`` for the write at the start of the next iteration."""
        if not data:
            return
        if not self._pending:
            self._loop.call_soon(self._flush)
        self._pending.append(bytes(data))
        self._pending_bytes += len(data)
        if self._pending_bytes >= self._transport.get_write_buffer_limits()[1]:
            self._flush()

    def writelines(self, lines: list[bytes]) -> None:
        for data in lines:
            self.write(data)

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + self._pending_bytes

    def write_eof(self) -> None:
        self._flush()
        self._transport.write_eof()

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def abort(self) -> None:
        self._pending.clear()
        self._pending_bytes = 0
        self._transport.abort()

    def _flush(self) -> None:
        """Hands what is kept to the transport (unless it is closing: its connection is gone)."""
        if not self._pending:
            return
        data = self._pending[0] if len(self._pending) == 1 else b"".join(self._pending)
        self._pending.clear()
        self._pending_bytes = 0
        if not self._transport.is_closing():
            self._transport.write(data)


class HttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, writing through a :class:`CoalescingTransport`."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(CoalescingTransport(transport, self.loop))  # type: ignore[arg-type]
