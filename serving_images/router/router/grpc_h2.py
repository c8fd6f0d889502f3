"""gRPC over HTTP/2 in the router's own asyncio protocol: unary OIP v2 calls without ``grpc.aio``.

``grpc.aio`` spends about five times the CPU of a REST request per unary call, crossing from grpc's
threads to the event loop and back (``docs/benchmarks.md``, protocols). This server speaks the part of
HTTP/2 (RFC 9113) and the gRPC wire format that unary calls need, on the loop uvicorn runs, the way
``router/httpproto.py`` answers REST: frames are parsed in ``data_received``, a call whose request has
arrived is answered at once on the same thread, and everything a read produced goes out in one write.

What it speaks: preface, SETTINGS, PING, WINDOW_UPDATE both ways, HEADERS with CONTINUATION/padding/
priority, DATA, RST_STREAM, GOAWAY; request headers through ``router.grpc_wire``'s HPACK decoder (Huffman
and static table from ``hpack``); gzip/deflate request messages (bounded). Answers are HEADERS + one DATA
message + trailers, or trailers-only for an error. Not spoken: streaming RPCs, server push. TLS through
the loop's SSL with ALPN ``h2``.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from typing import TYPE_CHECKING

import grpc
from google.protobuf.message import DecodeError

from router.grpc_service import SERVICE, status_of
from router.grpc_wire import (
    ACK,
    CONTINUATION,
    DATA,
    END_HEADERS,
    END_STREAM,
    FRAME_MAX,
    GOAWAY,
    HDR,
    HEADERS,
    MAX_STREAMS,
    PADDED,
    PING,
    PREFACE,
    PRIO,
    PUSH_PROMISE,
    RESPONSE_HEADERS,
    RST_STREAM,
    SERVER_START,
    SETTINGS,
    SETTINGS_ACK,
    TRAILERS_OK,
    WINDOW_UPDATE,
    HeaderDecoder,
    HeaderError,
    InflateError,
    cached_literal,
    frame,
    inflate,
    literal,
    trailers,
)

if TYPE_CHECKING:
    from router.grpc_listener import H2GrpcServer
    from router.grpc_service import Metadata

log = logging.getLogger(__name__)

PREFIX = "/" + SERVICE + "/"
OK = grpc.StatusCode.OK


class _Stream:
    __slots__ = ("body", "headers", "md", "window")

    def __init__(self, window: int) -> None:
        self.headers: bytearray | None = None  # a header block still waiting for CONTINUATION
        self.md: dict[str, str] | None = None
        self.body: bytes | bytearray = b""
        self.window = window


class H2GrpcProtocol(asyncio.Protocol):
    """One HTTP/2 connection serving unary gRPC calls of ``service``.

    Args:
        server: the server this connection belongs to.
    """

    def __init__(self, server: H2GrpcServer) -> None:
        self.server = server
        self.service = server.service
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.preface = False
        self.decoder = HeaderDecoder()
        self.streams: dict[int, _Stream] = {}
        self.last_stream = 0
        self.going_away = False
        self.out = bytearray()
        self.peer_window = 65535  # the peer's initial stream window
        self.peer_frame = 16384
        self.send_window = 65535  # connection send window
        self.pending: list[tuple[int, bytearray, bytes]] = []  # (stream, DATA still to send, trailers)
        self.received = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.server.connections.add(self)
        transport.write(SERVER_START)  # type: ignore[attr-defined]

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.connections.discard(self)
        self.transport = None

    @property
    def idle(self) -> bool:
        """No call open or answer waiting on flow control."""
        return not self.streams and not self.pending

    def goaway(self, code: int = 0, close: bool = False) -> None:
        """Send GOAWAY naming the last stream taken (calls after it are refused and may be retried).

        Args:
            code: the HTTP/2 error code (0: no error).
            close: close the connection after sending.
        """
        self.going_away = True
        if self.transport is not None:
            self.transport.write(frame(GOAWAY, 0, 0, HDR.pack(self.last_stream) + HDR.pack(code)))
            if close:
                self.transport.close()

    def data_received(self, data: bytes) -> None:
        if self.buf:  # the rest of a frame that began in an earlier read (at most one frame's bytes)
            self.buf += data
            data = bytes(self.buf)
            self.buf.clear()
        if not self.preface:
            rest = self._preface(data)
            if rest is None:
                return
            data = rest
        pos, n = 0, len(data)
        try:
            while n - pos >= 9:
                length = (data[pos] << 16) | (data[pos + 1] << 8) | data[pos + 2]
                if length > FRAME_MAX:
                    raise _ConnectionError(6)  # FRAME_SIZE_ERROR
                end = pos + 9 + length
                if end > n:
                    break
                kind, flags = data[pos + 3], data[pos + 4]
                stream = HDR.unpack_from(data, pos + 5)[0] & 0x7FFFFFFF
                payload = data[pos + 9 : end]
                pos = end
                if kind == DATA:
                    self._data(flags, stream, payload)
                elif kind == HEADERS:
                    self._headers(flags, stream, payload)
                else:
                    self._frame(kind, flags, stream, payload)
        except _ConnectionError as e:
            self._flush()
            self.goaway(e.code, close=True)
            return
        if pos < n:
            self.buf += data[pos:]
        self._flush()

    def _preface(self, data: bytes) -> bytes | None:
        """The bytes after the client's connection preface; None while it is incomplete or wrong."""
        if len(data) < 24:
            if not PREFACE.startswith(data):
                self.goaway(1, close=True)
                return None
            self.buf += data
            return None
        if data[:24] != PREFACE:
            self.goaway(1, close=True)
            return None
        self.preface = True
        return data[24:]

    def _flush(self) -> None:
        if self.out and self.transport is not None:
            self.transport.write(bytes(self.out))
        self.out.clear()

    def _frame(self, kind: int, flags: int, stream: int, payload: bytes) -> None:
        if kind == CONTINUATION:
            s = self.streams.get(stream)
            if s is None or s.md is not None or s.headers is None:
                raise _ConnectionError(1)
            s.headers += payload
            if flags & END_HEADERS:
                self._decode(stream, s, False)
        else:
            self._control(kind, flags, stream, payload)

    def _control(self, kind: int, flags: int, stream: int, payload: bytes) -> None:
        if kind == SETTINGS:
            if not flags & ACK:
                self._settings(payload)
                self.out += SETTINGS_ACK
        elif kind == PING:
            if not flags & ACK:
                self.out += frame(PING, ACK, 0, payload)
        elif kind == WINDOW_UPDATE:
            inc = HDR.unpack_from(payload)[0] & 0x7FFFFFFF if len(payload) == 4 else 0
            if stream == 0:
                self.send_window += inc
            elif stream in self.streams:
                self.streams[stream].window += inc
            self._send_pending()
        elif kind == RST_STREAM:
            self.streams.pop(stream, None)
            self.pending = [p for p in self.pending if p[0] != stream]
        elif kind == GOAWAY:
            self.going_away = True
        elif kind == PUSH_PROMISE:
            raise _ConnectionError(1)  # PROTOCOL_ERROR: clients do not push

    def _settings(self, payload: bytes) -> None:
        for i in range(0, len(payload) - 5, 6):
            ident, value = struct.unpack_from(">HI", payload, i)
            if ident == 4:
                delta = value - self.peer_window
                self.peer_window = value
                for s in self.streams.values():
                    s.window += delta
            elif ident == 5:
                self.peer_frame = value
        self._send_pending()

    def _headers(self, flags: int, stream: int, payload: bytes) -> None:
        if flags & PADDED:
            payload = payload[1 : len(payload) - payload[0]]
        if flags & PRIO:
            payload = payload[5:]
        if stream in self.streams:  # trailers of a request: unary clients send none; the body is complete
            if flags & END_STREAM:
                self._call(stream, self.streams.pop(stream))
            return
        if stream % 2 == 0 or stream <= self.last_stream:
            raise _ConnectionError(1)
        if self.going_away:  # after GOAWAY: never run; the client sees it refused
            self.out += frame(RST_STREAM, 0, stream, HDR.pack(7))  # REFUSED_STREAM
            return
        self.last_stream = stream
        s = _Stream(self.peer_window)
        self.streams[stream] = s
        if flags & END_HEADERS:  # the whole block in this frame (the common case): no copy
            self._decode(stream, s, bool(flags & END_STREAM), payload)
        else:
            s.headers = bytearray(payload)

    def _decode(self, stream: int, s: _Stream, ended: bool, block: bytes | None = None) -> None:
        try:
            s.md = self.decoder.decode(bytes(s.headers or b"") if block is None else block)
        except HeaderError as e:
            raise _ConnectionError(9) from e  # COMPRESSION_ERROR: the shared table is lost
        s.headers = None
        if ended:
            self._call(stream, self.streams.pop(stream))

    def _data(self, flags: int, stream: int, payload: bytes) -> None:
        self.received += len(payload)
        if self.received > 2**30:
            self.out += frame(WINDOW_UPDATE, 0, 0, HDR.pack(self.received))
            self.received = 0
        s = self.streams.get(stream)
        if s is None:
            return  # a reset or answered stream
        if flags & PADDED:
            payload = payload[1 : len(payload) - payload[0]]
        if not s.body:  # the first DATA frame (of a unary call, often the only one): kept as it came
            s.body = payload
        else:
            if type(s.body) is bytes:
                s.body = bytearray(s.body)
            s.body += payload
        if len(s.body) > self.server.max_message + 5:
            del self.streams[stream]
            self._answer_error(
                stream,
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"request message larger than the limit of {self.server.max_message} bytes",
            )
            self.out += frame(RST_STREAM, 0, stream, HDR.pack(0))
            return
        if flags & END_STREAM:
            self._call(stream, self.streams.pop(stream))

    def _call(self, stream: int, s: _Stream) -> None:
        md = s.md or {}
        path = md.get(":path", "")
        entry = self.server.routes.get(path)
        if entry is None:
            self._answer_error(stream, grpc.StatusCode.UNIMPLEMENTED, f"method {path!r} is not served here")
            return
        body = s.body
        if len(body) < 5 or body[0] > 1 or HDR.unpack_from(body, 1)[0] != len(body) - 5:
            self._answer_error(stream, grpc.StatusCode.INTERNAL, "malformed gRPC message")
            return
        payload = body[5:]
        if body[0]:
            try:
                payload = inflate(bytes(payload), md.get("grpc-encoding", ""), self.server.max_message)
            except InflateError as e:
                self._answer_error(stream, e.code, e.message)
                return
        rpc, request_class, core = entry
        try:
            try:
                request = request_class.FromString(payload)
            except DecodeError as e:
                raise _BadMessage(f"request is not a valid {request_class.__name__}") from e
            resp, answer_md = core(request, md)
            message = resp if type(resp) is bytes else resp.SerializeToString()
        except _BadMessage as e:
            self._answer_error(stream, grpc.StatusCode.INVALID_ARGUMENT, str(e))
            return
        except Exception as e:
            self._answer_error(stream, *status_of(e, rpc))
            return
        self.service.count(OK)
        self._answer(stream, message, answer_md, s.window)

    def _answer(self, stream: int, message: bytes, md: Metadata, window: int) -> None:
        head = RESPONSE_HEADERS + b"".join(
            [literal(k, v) if k == "x-request-id" else cached_literal(k, v) for k, v in md]
        )
        size = len(message) + 5
        data = b"\x00" + HDR.pack(size - 5) + message
        tail = frame(HEADERS, END_HEADERS | END_STREAM, stream, TRAILERS_OK)
        if size <= self.peer_frame and size <= window and size <= self.send_window:
            self.send_window -= size
            self.out += frame(HEADERS, END_HEADERS, stream, head) + frame(DATA, 0, stream, data) + tail
            return
        self.out += frame(HEADERS, END_HEADERS, stream, head)
        s = _Stream(window)  # the answer waits on flow control; keep the stream open for WINDOW_UPDATE
        self.streams[stream] = s
        s.md = {}
        self.pending.append((stream, bytearray(data), tail))
        if len(self.pending) > MAX_STREAMS:  # a peer that sends calls but never opens its window
            raise _ConnectionError(11)  # ENHANCE_YOUR_CALM
        self._send_pending()

    def _send_pending(self) -> None:
        if not self.pending or self.send_window <= 0:
            return
        still: list[tuple[int, bytearray, bytes]] = []
        for stream, data, tail in self.pending:
            s = self.streams.get(stream)
            if s is None:
                continue
            while data and self.send_window > 0 and s.window > 0:
                n = min(len(data), self.peer_frame, self.send_window, s.window)
                self.out += frame(DATA, 0, stream, bytes(data[:n]))
                del data[:n]
                self.send_window -= n
                s.window -= n
            if data:
                still.append((stream, data, tail))
            else:
                self.out += tail
                self.streams.pop(stream, None)
        self.pending = still

    def _answer_error(self, stream: int, code: grpc.StatusCode, message: str) -> None:
        self.service.count(code)
        block = RESPONSE_HEADERS + trailers(code, message)
        self.out += frame(HEADERS, END_HEADERS | END_STREAM, stream, block)


class _ConnectionError(Exception):
    """Raised when the peer breaks HTTP/2 (the connection ends with GOAWAY carrying ``code``)."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


class _BadMessage(Exception):
    """Raised when a request message does not parse as its RPC's protobuf type."""
