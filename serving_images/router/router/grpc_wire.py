"""HTTP/2 frames and HPACK fields the router's gRPC server (``router/grpc_h2.py``) writes.

Header blocks are encoded as literal fields without indexing, with plain (not Huffman) strings: no
table state is shared with the peer, so every block can be built once and reused.
"""

from __future__ import annotations

import struct

import grpc

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = (
    range(10)
)
END_STREAM, ACK, END_HEADERS, PADDED, PRIO = 0x1, 0x1, 0x4, 0x8, 0x20
MAX_WINDOW = 2**31 - 1
FRAME_MAX = 16384  # our SETTINGS_MAX_FRAME_SIZE (the protocol's default)
MAX_STREAMS = 256
HDR = struct.Struct(">I")
# SETTINGS: MAX_CONCURRENT_STREAMS, INITIAL_WINDOW_SIZE (streams), then the connection window raised too.
SERVER_START = (
    struct.pack(">I", 12)[1:]
    + bytes([SETTINGS, 0])
    + HDR.pack(0)
    + struct.pack(">HIHI", 3, MAX_STREAMS, 4, MAX_WINDOW)
    + struct.pack(">I", 4)[1:]
    + bytes([WINDOW_UPDATE, 0])
    + HDR.pack(0)
    + HDR.pack(MAX_WINDOW - 65535)
)
SETTINGS_ACK = b"\x00\x00\x00" + bytes([SETTINGS, ACK]) + HDR.pack(0)


def hpack_int(value: int, prefix_bits: int, first: int) -> bytes:
    """An HPACK integer (RFC 7541 5.1) with ``first`` holding the bits above the prefix."""
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes([first | value])
    out = bytearray([first | limit])
    value -= limit
    while value >= 128:
        out.append((value & 127) | 128)
        value >>= 7
    out.append(value)
    return bytes(out)


def literal(name: str, value: str) -> bytes:
    """A literal header field without indexing, new name, plain strings (no table state, no Huffman)."""
    n, v = name.encode("ascii"), value.encode("utf-8")
    return b"\x00" + hpack_int(len(n), 7, 0) + n + hpack_int(len(v), 7, 0) + v


RESPONSE_HEADERS = b"\x88" + literal("content-type", "application/grpc")  # 0x88: static ':status 200'
TRAILERS_OK = literal("grpc-status", "0")


def frame(kind: int, flags: int, stream: int, payload: bytes) -> bytes:
    """One frame: 9-byte header (length, type, flags, stream) and payload."""
    return HDR.pack(len(payload))[1:] + bytes([kind, flags]) + HDR.pack(stream) + payload


def grpc_message(message: str) -> str:
    """Percent-encode a status message as the gRPC spec asks (printable ASCII except '%' kept)."""
    return "".join(
        chr(b) if 0x20 <= b <= 0x7E and b != 0x25 else f"%{b:02X}" for b in message.encode("utf-8")
    )


def trailers(code: grpc.StatusCode, message: str) -> bytes:
    """The header block of a status (``grpc-status``, ``grpc-message``).

    Args:
        code: the status.
        message: its message.

    Returns:
        The HPACK-encoded block.
    """
    block = literal("grpc-status", str(code.value[0]))
    return block + literal("grpc-message", grpc_message(message)) if message else block
