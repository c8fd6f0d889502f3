"""uvicorn's httptools protocol with one send per response, and scoring answered without a task.

uvicorn writes the status line and headers of a response in one ``transport.write`` and the body in
another. On a keep-alive connection with ``TCP_NODELAY`` (uvloop's default) each write is its own
``send`` syscall and its own wake-up of the client; profiling the router under load showed those two
syscalls as the largest single cost of a request. The transport given to the protocol here queues the
writes made during one step of the event loop and hands them to the socket joined, in one callback
scheduled right after that step, so the head and body of a response leave in one segment.

Scoring requests (``POST`` to ``/invocations``, ``/models/{name}/invocations`` and
``/v2/models/{name}[/versions/{v}]/infer``) skip the ASGI machinery: the data plane scores
synchronously anyway, so once the parser has the whole body the protocol calls
``RouterApp.serve_score`` and writes the response itself. That saves, per request, the
request/response cycle object, an ``asyncio.Event``, a task and its coroutine frames, two ASGI
messages and uvicorn's header validation — with them about a third of the router's CPU per request
and much of its latency tail at 16 connections (``docs/benchmarks.md``). Everything else (admin,
metadata, health, metrics, any request while a pipelined ASGI request is still running, a body
announced larger than the limit, ``Expect: 100-continue``, a client not reading its responses) goes
through uvicorn's ASGI path unchanged. Both paths build the answer with the same code.
"""

from __future__ import annotations

import asyncio
import urllib.parse
from typing import Any

import httptools
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from router.app import RouterApp
from router.errors import PayloadTooLarge


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

    def write_now(self, data: bytes) -> None:
        """Send ``data`` at once, after anything still queued (keeps responses in order).

        Args:
            data: bytes to send.
        """
        if self._pending:
            self._pending.append(data)
            self.flush()
        elif not self._transport.is_closing():
            self._transport.write(data)

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
    """uvicorn's httptools protocol writing through a ``CoalescingTransport``, with the scoring fast path."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        app = self.app
        self._router: RouterApp | None = app if isinstance(app, RouterApp) else None
        self._fast: list[bytes] | None = None  # body chunks of the scoring request being received
        self._fast_size = 0
        self._fast_path = ""
        self._fast_keep = True

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Wrap the transport, then let uvicorn set the connection up.

        Args:
            transport: the connection's transport.
        """
        super().connection_made(CoalescingTransport(transport, self.loop))  # type: ignore[arg-type]

    def on_headers_complete(self) -> None:
        """Take a scoring request onto the fast path; hand anything else to uvicorn."""
        router = self._router
        cycle = self.cycle
        parser = self.parser
        if (
            router is not None
            and parser.get_method() == b"POST"
            and (cycle is None or cycle.response_complete)
            and not self.expect_100_continue
            and not self.flow.write_paused
            and not parser.should_upgrade()
        ):
            url = self.url
            if b"?" in url or b"%" in url or b"#" in url:
                path = httptools.parse_url(url).path.decode("latin-1")
                if "%" in path:
                    path = urllib.parse.unquote(path)
            else:
                path = url.decode("latin-1")
            if router.is_score_path(path) and self._announced_size() <= router.max_body:
                self._fast = []
                self._fast_size = 0
                self._fast_path = path
                self._fast_keep = parser.get_http_version() != "1.0" and parser.should_keep_alive()
                return
        super().on_headers_complete()

    def _announced_size(self) -> int:
        for name, value in self.headers:
            if name == b"content-length":
                try:
                    return int(value)
                except ValueError:
                    return 0
        return 0

    def on_body(self, body: bytes) -> None:
        """Collect the body of a fast-path request (up to the limit; beyond it only its size)."""
        fast = self._fast
        if fast is None:
            super().on_body(body)
            return
        self._fast_size += len(body)
        if self._router is not None and self._fast_size <= self._router.max_body:
            fast.append(body)

    def on_message_complete(self) -> None:
        """Score a fast-path request and write the response; anything else goes to uvicorn."""
        fast = self._fast
        if fast is None:
            super().on_message_complete()
            return
        self._fast = None
        router = self._router
        assert router is not None
        if self._fast_size > router.max_body:
            too_large = PayloadTooLarge(f"request body exceeds the limit of {router.max_body} bytes")
            status, out, headers = router.error_response(too_large, self._fast_path)
        else:
            body = fast[0] if len(fast) == 1 else b"".join(fast)
            status, out, headers = router.serve_score(self._fast_path, body, dict(self.headers))
        closing = router.plane.close_connections
        keep = self._fast_keep and not closing
        head = [STATUS_LINE[status]]
        for name, value in self.server_state.default_headers:
            head += (name, b": ", value, b"\r\n")
        for name, value in headers:
            head += (name, b": ", value, b"\r\n")
        if not keep and not closing:  # when closing, ``_finish`` added the header
            head.append(b"connection: close\r\n")
        head += (b"\r\n", out)
        transport: CoalescingTransport = self.transport  # type: ignore[assignment]
        transport.write_now(b"".join(head))
        if not keep:
            transport.close()
        self.on_response_complete()

    def shutdown(self) -> None:
        """Graceful shutdown: a fast-path request being received is answered, then the connection closes."""
        if self._fast is not None:
            self._fast_keep = False
            return
        super().shutdown()
