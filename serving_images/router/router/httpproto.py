"""uvicorn's httptools protocol with one send per response instead of two.

uvicorn writes the status line and headers of a response in one ``transport.write`` and the body in
another. On a keep-alive connection with ``TCP_NODELAY`` (uvloop's default) each write is its own
``send`` syscall and its own wake-up of the client; profiling the router under load showed those two
syscalls as the largest single cost of a request. The transport given to the protocol here queues the
writes made during one step of the event loop and hands them to the socket joined, in one callback
scheduled right after that step, so the head and body of a response leave in one segment.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class CoalescingTransport:
    """A transport proxy that joins the writes of one event-loop step into one write.

    Args:
        transport: the real transport.
        loop: the running loop (schedules the flush).
    """

    __slots__ = ("_loop", "_pending", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Queue ``data``; the first write of a step schedules the flush.

        Args:
            data: bytes to send.
        """
        pending = self._pending
        pending.append(bytes(data) if not isinstance(data, bytes) else data)
        if len(pending) == 1:
            self._loop.call_soon(self.flush)

    def flush(self) -> None:
        """Hand everything queued to the real transport in one write."""
        pending = self._pending
        if not pending:
            return
        data = pending[0] if len(pending) == 1 else b"".join(pending)
        pending.clear()
        if not self._transport.is_closing():
            self._transport.write(data)

    def writelines(self, lines: Any) -> None:
        """Queue several buffers.

        Args:
            lines: an iterable of bytes.
        """
        for line in lines:
            self.write(line)

    def close(self) -> None:
        """Send what is queued, then close."""
        self.flush()
        self._transport.close()

    def abort(self) -> None:
        """Drop what is queued and abort the connection."""
        self._pending.clear()
        self._transport.abort()

    def write_eof(self) -> None:
        """Send what is queued, then half-close."""
        self.flush()
        self._transport.write_eof()

    def is_closing(self) -> bool:
        """Whether the real transport is closing."""
        return self._transport.is_closing()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        """Forward to the real transport (peer name, socket, SSL context)."""
        return self._transport.get_extra_info(name, default)

    def pause_reading(self) -> None:
        """Forward flow control to the real transport."""
        self._transport.pause_reading()

    def resume_reading(self) -> None:
        """Forward flow control to the real transport."""
        self._transport.resume_reading()

    def get_write_buffer_size(self) -> int:
        """Bytes queued here and in the real transport."""
        return sum(map(len, self._pending)) + self._transport.get_write_buffer_size()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class CoalescingHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol writing through a ``CoalescingTransport``."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Wrap the transport, then let uvicorn set the connection up.

        Args:
            transport: the connection's transport.
        """
        super().connection_made(CoalescingTransport(transport, self.loop))  # type: ignore[arg-type]
