"""HTTP/2 frames and HPACK fields the router's gRPC server (``router/grpc_h2.py``) writes.

Header blocks are encoded as literal fields without indexing, with plain (not Huffman) strings: no
table state is shared with the peer, so every block can be built once and reused.
"""

from __future__ import annotations

import struct
import zlib
from collections import deque

import grpc
from hpack.exceptions import HPACKDecodingError
from hpack.huffman_table import decode_huffman
from hpack.table import HeaderTable

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


RESPONSE_HEADERS = (  # 0x88: static ':status 200'
    b"\x88"
    + literal("content-type", "application/grpc")
    + literal("grpc-accept-encoding", "identity,gzip,deflate")
)
TRAILERS_OK = literal("grpc-status", "0")


_FRAME = struct.Struct(">HBBBI")


def frame(kind: int, flags: int, stream: int, payload: bytes) -> bytes:
    """One frame: 9-byte header (length, type, flags, stream) and payload."""
    n = len(payload)
    return _FRAME.pack(n >> 8, n & 0xFF, kind, flags, stream) + payload


_LITERALS: dict[tuple[str, str], bytes] = {}


def cached_literal(name: str, value: str) -> bytes:
    """``literal`` for fields that repeat (variant names, versions), from a bounded cache."""
    key = (name, value)
    block = _LITERALS.get(key)
    if block is None:
        if len(_LITERALS) > 4096:
            _LITERALS.clear()
        block = _LITERALS[key] = literal(name, value)
    return block


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


class HeaderError(ValueError):
    """Raised when a header block breaks HPACK (the connection's shared table is then lost)."""


_STATIC = [("", "", 32)] + [
    (n.decode("latin-1"), v.decode("latin-1"), len(n) + len(v) + 32) for n, v in HeaderTable.STATIC_TABLE
]
"""The static table as (name, value, size): index 0 is a placeholder; a field's size counts toward the list."""


def _read_int(block: bytes, pos: int, bits: int) -> tuple[int, int]:
    mask = (1 << bits) - 1
    value = block[pos] & mask
    pos += 1
    if value < mask:
        return value, pos
    shift = 0
    while pos < len(block) and shift <= 28:
        b = block[pos]
        pos += 1
        value += (b & 127) << shift
        shift += 7
        if not b & 128:
            return value, pos
    raise HeaderError("HPACK integer runs past the block or overflows")


def _read_str(block: bytes, pos: int) -> tuple[str, int]:
    huffman = block[pos] & 0x80
    length, pos = _read_int(block, pos, 7)
    end = pos + length
    if end > len(block):
        raise HeaderError("HPACK string runs past the block")
    raw = block[pos:end]
    if huffman:
        try:
            raw = decode_huffman(raw)
        except HPACKDecodingError as e:
            raise HeaderError(f"bad Huffman string: {e}") from e
    return raw.decode("latin-1"), end


class HeaderDecoder:
    """An HPACK decoder (RFC 7541) for request header blocks: the static and dynamic tables, integers,
    literals and table size updates here; Huffman strings through ``hpack``'s table-driven decoder.

    A header block of a gRPC call is mostly one-byte indexed fields, so reading it in one loop costs a
    fraction of ``hpack.Decoder`` (which logs and wraps every field). Values are read as Latin-1 (gRPC
    metadata values are ASCII).

    Args:
        table_size: our SETTINGS_HEADER_TABLE_SIZE (the protocol's default 4,096).
        max_list: the largest header list in bytes (name + value + 32 each, RFC 9113 6.5.2).
    """

    def __init__(self, table_size: int = 4096, max_list: int = 65536) -> None:
        self.dynamic: deque[tuple[str, str, int]] = deque()
        self.size = 0
        self.max_size = self.limit = table_size
        self.max_list = max_list

    def _get(self, index: int) -> tuple[str, str, int]:
        if 0 < index < len(_STATIC):
            return _STATIC[index]
        i = index - len(_STATIC)
        if index == 0 or i >= len(self.dynamic):
            raise HeaderError(f"HPACK index {index} is not in the table")
        return self.dynamic[i]

    def _add(self, field: tuple[str, str, int]) -> None:
        self.dynamic.appendleft(field)
        self.size += field[2]
        self._evict()

    def _evict(self) -> None:
        while self.size > self.max_size and self.dynamic:
            self.size -= self.dynamic.pop()[2]

    def decode(self, block: bytes) -> dict[str, str]:
        """Decode one complete header block (HEADERS + CONTINUATION payloads).

        Args:
            block: the block.

        Returns:
            Fields by name (a repeated name keeps its last value).

        Raises:
            HeaderError: the block breaks HPACK or the list is too large.
        """
        out: dict[str, str] = {}
        pos, n, total = 0, len(block), 0
        static, nstatic, dynamic = _STATIC, len(_STATIC), self.dynamic
        while pos < n:
            b = block[pos]
            if 0x80 < b < 0xFF:  # indexed field, index in the first byte (the common case, read inline)
                index = b & 0x7F
                pos += 1
                if index < nstatic:
                    name, value, size = static[index]
                else:
                    try:
                        name, value, size = dynamic[index - nstatic]
                    except IndexError:
                        raise HeaderError(f"HPACK index {index} is not in the table") from None
            elif b & 0x80:  # indexed field: index 0 (an error) or one of more than one byte
                index, pos = _read_int(block, pos, 7)
                name, value, size = self._get(index)
            elif b & 0xE0 == 0x20:  # dynamic table size update
                size, pos = _read_int(block, pos, 5)
                if size > self.limit:
                    raise HeaderError(f"table size {size} above the limit {self.limit}")
                self.max_size = size
                self._evict()
                continue
            else:  # literal: with incremental indexing (6-bit index), without or never indexed (4-bit)
                index, pos = _read_int(block, pos, 6 if b & 0x40 else 4)
                if index:
                    name = self._get(index)[0]
                else:
                    name, pos = _read_str(block, pos)
                value, pos = _read_str(block, pos)
                size = len(name) + len(value) + 32
                if b & 0x40:
                    self._add((name, value, size))
            total += size
            if total > self.max_list:
                raise HeaderError(f"header list larger than {self.max_list} bytes")
            out[name] = value
        return out


class InflateError(Exception):
    """Raised when a compressed request message cannot be read (its status goes back to the caller)."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


def inflate(data: bytes, encoding: str, limit: int) -> bytes:
    """Decompress a message sent with ``grpc-encoding`` gzip or deflate, at most ``limit`` bytes.

    Args:
        data: the compressed message.
        encoding: the call's ``grpc-encoding``.
        limit: the largest message accepted.

    Returns:
        The message.

    Raises:
        InflateError: an encoding not served (UNIMPLEMENTED), a broken stream (INTERNAL) or a message
            over the limit (RESOURCE_EXHAUSTED).
    """
    wbits = {"gzip": 31, "deflate": 15}.get(encoding)
    if wbits is None:
        raise InflateError(grpc.StatusCode.UNIMPLEMENTED, f"message compressed with {encoding!r}: not served")
    d = zlib.decompressobj(wbits)
    try:
        out = d.decompress(data, limit + 1)
    except zlib.error as e:
        raise InflateError(grpc.StatusCode.INTERNAL, f"{encoding} message cannot be decompressed: {e}") from e
    if len(out) > limit:
        raise InflateError(
            grpc.StatusCode.RESOURCE_EXHAUSTED, f"request message larger than the limit of {limit} bytes"
        )
    return out
