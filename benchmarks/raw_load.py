"""One closed-loop load generator for both protocols: REST (HTTP/1.1) and gRPC (HTTP/2, h2c), same code.

``wrk`` (C) drives REST and the Python ``grpc`` client drives gRPC in ``benchmarks/protocols.py``'s other
rows; the two clients differ more than the servers do (the Python grpc client spends several times the
CPU of ``wrk`` per call), so a throughput ratio between those rows measures the clients as much as the
router. Here both protocols go through the same asyncio (uvloop) code on the same core:
``CONNECTIONS`` connections, one call in flight on each, pre-encoded request bytes with ``x-unit-id``
cycling over 10,000 units, and each answer read just far enough to know it ended and how (HTTP status;
for gRPC the ``grpc-status`` of the trailers, decoded with the router's HPACK decoder, which keeps the
shared table of servers that index their fields).

gRPC framing: the preface, SETTINGS (largest stream window) and a connection WINDOW_UPDATE; per call one
HEADERS (literal fields, no table state) and one DATA frame with END_STREAM; SETTINGS and PING are
acknowledged, the connection window is topped up. Requests must fit the peer's initial 64 KiB windows.

Usage: ``python benchmarks/raw_load.py {rest|grpc} HOST:PORT PATH REQUEST_FILE SECONDS CONNECTIONS
[CONTENT_TYPE [EXTRA_HEADER:VALUE ...]]`` (PATH: the URL path, or the gRPC method path). Prints one JSON
line: answered, errors by status, req/s, p50/p99/p99.9 in ms.
"""

from __future__ import annotations

import asyncio
import json
import struct
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "serving_images" / "router"))

from router.grpc_wire import PREFACE, HeaderDecoder, literal

UNITS = 10_000


def _frame(kind: int, flags: int, stream: int, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload


class Client(asyncio.Protocol):
    """One connection; ``call()`` sends the next request and resolves when its answer has ended."""

    def __init__(self, proto: str, request: bytes, head: bytes, first: bytes = b"") -> None:
        self.proto, self.request, self.head = proto, request, head
        self.first = first or head  # gRPC: the first call's block indexes the fields later calls name
        self.buf = bytearray()
        self.done: asyncio.Future[str] | None = None
        self.transport: asyncio.Transport | None = None
        self.stream = -1
        self.decoder = HeaderDecoder()
        self.block = bytearray()
        self.received = 0
        self.ended = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        if self.proto == "grpc":
            hello = PREFACE + _frame(4, 0, 0, struct.pack(">HIHI", 2, 0, 4, 2**31 - 1))
            transport.write(hello + _frame(8, 0, 0, struct.pack(">I", 2**31 - 1 - 65535)))  # type: ignore[attr-defined]

    def connection_lost(self, exc: Exception | None) -> None:
        if self.done is not None and not self.done.done():
            self.done.set_result("CONNECTION_LOST")

    def call(self, unit: int) -> asyncio.Future[str]:
        assert self.transport is not None
        self.done = asyncio.get_running_loop().create_future()
        u = f"unit-{unit}"
        if self.proto == "rest":
            self.transport.write(self.head + f"X-Unit-Id: {u}\r\n\r\n".encode() + self.request)
        else:
            self.stream += 2
            block = (self.first if self.stream == 1 else self.head) + literal("x-unit-id", u)
            self.transport.write(_frame(1, 4, self.stream, block) + _frame(0, 1, self.stream, self.request))
        return self.done

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if self.proto == "rest":
            self._http1()
        else:
            self._h2()

    def _http1(self) -> None:
        buf = self.buf
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(buf[:end]).lower()
        i = head.find(b"\r\ncontent-length:")
        j = head.find(b"\r\n", i + 2)
        length = int(head[i + 17 : j if j > 0 else len(head)]) if i >= 0 else 0
        if len(buf) < end + 4 + length:
            return
        status = head[9:12].decode()
        del buf[: end + 4 + length]
        if self.done is not None:
            self.done.set_result("OK" if status.startswith("2") else status)

    def _h2(self) -> None:
        buf, out = self.buf, bytearray()
        while len(buf) >= 9:
            n = (buf[0] << 16) | (buf[1] << 8) | buf[2]
            if len(buf) < 9 + n:
                break
            kind, flags = buf[3], buf[4]
            payload = bytes(buf[9 : 9 + n])
            del buf[: 9 + n]
            self._on_frame(kind, flags, payload, out)
        if out and self.transport is not None:
            self.transport.write(bytes(out))

    def _on_frame(self, kind: int, flags: int, payload: bytes, out: bytearray) -> None:
        if kind == 0:  # DATA
            self.received += len(payload)
            if self.received > 2**30:
                out += _frame(8, 0, 0, struct.pack(">I", self.received))
                self.received = 0
        elif kind in (1, 9):  # HEADERS, CONTINUATION
            if kind == 1:
                if flags & 0x8:
                    payload = payload[1 : len(payload) - payload[0]]
                if flags & 0x20:
                    payload = payload[5:]
                self.ended = bool(flags & 1)
            self.block += payload
            if flags & 4:
                fields = self.decoder.decode(bytes(self.block))
                self.block.clear()
                if self.ended and self.done is not None and not self.done.done():
                    status = fields.get("grpc-status", "NO_STATUS")
                    self.done.set_result("OK" if status == "0" else f"grpc-{status}")
        elif kind == 4 and not flags & 1:  # SETTINGS
            out += _frame(4, 1, 0, b"")
        elif kind == 6 and not flags & 1:  # PING
            out += _frame(6, 1, 0, payload)
        elif kind in (3, 7) and self.done is not None and not self.done.done():  # RST_STREAM, GOAWAY
            self.done.set_result("RST_STREAM" if kind == 3 else "GOAWAY")


async def run(
    proto: str, target: str, path: str, body: bytes, seconds: float, connections: int, extra: list[str]
) -> dict[str, object]:
    host, port = target.rsplit(":", 1)
    headers = [tuple(h.split(":", 1)) for h in extra]
    if proto == "rest":
        lines = [f"POST {path} HTTP/1.1", f"Host: {target}", f"Content-Length: {len(body)}"]
        lines += [f"{k}: {v.strip()}" for k, v in headers]
        head = first = ("\r\n".join(lines) + "\r\n").encode()
        request = body
    else:
        if len(body) + 5 > 65535:
            raise SystemExit("gRPC requests must fit the peer's initial 64 KiB window")
        # :method POST (static 3), :scheme http (static 6), then literals without indexing
        fields = [(":path", path), (":authority", target), ("content-type", "application/grpc")]
        fields += [("te", "trailers"), *((k, v.strip()) for k, v in headers)]
        # :method POST (static 3), :scheme http (static 6); the rest literal with incremental indexing on
        # the first call (0x40: new name), indexed afterwards (the newest entry is index 62)
        first = b"\x83\x86" + b"".join(b"\x40" + literal(k, v)[1:] for k, v in fields)
        later = b"\x83\x86" + bytes(0x80 | (62 + len(fields) - 1 - i) for i in range(len(fields)))
        head = later
        request = b"\x00" + struct.pack(">I", len(body)) + body
    loop = asyncio.get_running_loop()
    clients = []
    for _ in range(connections):
        _, c = await loop.create_connection(lambda: Client(proto, request, head, first), host, int(port))
        clients.append(c)
    latencies: list[float] = []
    errors: dict[str, int] = {}
    counter = 0
    end = time.perf_counter() + seconds

    async def worker(c: Client) -> None:
        nonlocal counter
        perf = time.perf_counter
        while True:
            t0 = perf()
            if t0 >= end:
                return
            counter += 1
            status = await c.call(counter % UNITS)
            if status == "OK":
                latencies.append(perf() - t0)
            else:
                errors[status] = errors.get(status, 0) + 1
                if status in ("CONNECTION_LOST", "GOAWAY"):
                    return

    t_start = time.perf_counter()
    await asyncio.gather(*(worker(c) for c in clients))
    elapsed = time.perf_counter() - t_start
    for c in clients:
        if c.transport is not None:
            c.transport.close()
    latencies.sort()

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p / 100 * len(latencies)))] * 1000 if latencies else 0.0

    return {
        "answered": len(latencies),
        "errors": errors,
        "rps": len(latencies) / elapsed,
        "p50": pct(50),
        "p99": pct(99),
        "p999": pct(99.9),
    }


def main() -> int:
    proto, target, path, request_file, seconds, connections, *extra = sys.argv[1:]
    body = Path(request_file).read_bytes()
    coro = run(proto, target, path, body, float(seconds), int(connections), extra)
    try:
        import uvloop

        result = uvloop.run(coro)
    except ImportError:
        result = asyncio.run(coro)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
