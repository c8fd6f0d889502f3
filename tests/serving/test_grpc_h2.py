"""The router's own HTTP/2 gRPC server (``router/grpc_h2.py``) at the frame level, in process.

Requests are encoded and answers decoded with python-hyper's ``hpack`` (an independent HPACK
implementation); frames are parsed here from RFC 9113's layout. The service behind the protocol is
a small set of real protobuf cores, so each test isolates one rule of the protocol: flow control,
CONTINUATION/padding/priority, PING, GOAWAY, and the gRPC statuses for what cannot be served.
"""

from __future__ import annotations

import random
import struct

import grpc
import pytest
from hpack import Decoder, Encoder
from router._proto import grpc_predict_v2_pb2 as pb
from router.grpc_listener import H2GrpcServer
from router.grpc_wire import PREFACE, HeaderDecoder, HeaderError

PATH = "/inference.GRPCInferenceService/"


class Sink:
    """The transport end of one connection: what the server wrote, and whether it closed."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.closed = False

    def write(self, data: bytes) -> None:
        self.data += data

    def close(self) -> None:
        self.closed = True


class Service:
    """Real protobuf cores: ServerLive answers; ModelInfer answers ``size`` bytes of raw output."""

    def __init__(self) -> None:
        self.calls = 0
        self.responses: dict[str, int] = {}
        self.methods = {
            "ServerLive": (pb.ServerLiveRequest, lambda req, md: (pb.ServerLiveResponse(live=True), ())),
            "ModelInfer": (pb.ModelInferRequest, self.infer),
        }

    def infer(self, req, md):
        self.calls += 1
        resp = pb.ModelInferResponse(model_name=req.model_name, id=md.get("x-unit-id", ""))
        resp.raw_output_contents.append(b"\x07" * int(req.id or 0))
        return resp, (("x-variant", "champion"),)

    def count(self, code):
        self.responses[code.name] = self.responses.get(code.name, 0) + 1


def frame(kind, flags, stream, payload):
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload


def settings(**values):
    ids = {"initial_window": 4, "max_frame": 5}
    return frame(4, 0, 0, b"".join(struct.pack(">HI", ids[k], v) for k, v in values.items()))


def message(msg):
    body = msg.SerializeToString()
    return b"\x00" + struct.pack(">I", len(body)) + body


class Conn:
    """A client connection to an ``H2GrpcProtocol`` that reads back frames and decodes header blocks."""

    def __init__(self, max_message=1 << 20, **peer_settings):
        self.service = Service()
        self.server = H2GrpcServer(self.service, max_message)
        self.proto = self.server.protocol()
        self.sink = Sink()
        self.proto.connection_made(self.sink)
        self.enc, self.dec = Encoder(), Decoder()
        self.next_stream = 1
        self.proto.data_received(PREFACE + settings(**peer_settings))
        self.read()

    def send(self, data):
        self.proto.data_received(data)

    def headers(self, rpc, stream, **md):
        fields = [(":method", "POST"), (":scheme", "http"), (":path", PATH + rpc), (":authority", "x")]
        fields += [("content-type", "application/grpc"), ("te", "trailers"), *md.items()]
        return self.enc.encode(fields)

    def call(self, rpc, msg, **md):
        stream, self.next_stream = self.next_stream, self.next_stream + 2
        self.send(frame(1, 4, stream, self.headers(rpc, stream, **md)) + frame(0, 1, stream, message(msg)))
        return stream

    def read(self):
        """All frames written since the last read: (type, flags, stream, payload or decoded headers)."""
        out, data, pos = [], bytes(self.sink.data), 0
        self.sink.data.clear()
        while pos < len(data):
            n = int.from_bytes(data[pos : pos + 3], "big")
            kind, flags = data[pos + 3], data[pos + 4]
            stream = int.from_bytes(data[pos + 5 : pos + 9], "big")
            payload = data[pos + 9 : pos + 9 + n]
            pos += 9 + n
            if kind == 1:
                payload = dict(self.dec.decode(payload))
            out.append((kind, flags, stream, payload))
        return out


def test_a_unary_call_is_headers_data_trailers_in_one_write():
    c = Conn()
    s = c.call("ModelInfer", pb.ModelInferRequest(model_name="m", id="3"), **{"x-unit-id": "u-1"})
    (k1, f1, s1, head), (k2, f2, _, data), (k3, f3, _, tail) = c.read()
    assert (k1, k2, k3, s1) == (1, 0, 1, s)
    assert head[":status"] == "200" and head["content-type"] == "application/grpc"
    assert head["x-variant"] == "champion" and not f1 & 1 and not f2 & 1
    assert data[0] == 0 and int.from_bytes(data[1:5], "big") == len(data) - 5
    resp = pb.ModelInferResponse.FromString(data[5:])
    assert resp.id == "u-1" and resp.raw_output_contents[0] == b"\x07" * 3
    assert tail == {"grpc-status": "0"} and f3 & 1  # END_STREAM on the trailers
    assert c.service.responses == {"OK": 1}


def test_answers_wait_for_the_peers_window_and_frame_size():
    c = Conn(initial_window=100, max_frame=16384)
    size = 100000  # answer > the peer's 100-byte stream window, one 16 KiB frame, the connection window
    s = c.call("ModelInfer", pb.ModelInferRequest(model_name="m", id=str(size)))
    frames = c.read()
    assert [(k, len(p)) for k, _, _, p in frames[1:]] == [(0, 100)]  # headers, then 100 bytes only
    c.send(frame(8, 0, s, struct.pack(">I", 30000)))  # stream window +30,000
    sizes = [len(p) for k, _, _, p in c.read() if k == 0]
    assert sizes == [16384, 13616]
    c.send(frame(8, 0, s, struct.pack(">I", 100000)))  # the stream may take more: the connection may not
    sent = 30100 + sum(len(p) for k, _, _, p in c.read() if k == 0)
    assert sent == 65535  # the connection's initial window, all used
    c.send(frame(8, 0, 0, struct.pack(">I", 200000)))
    frames = c.read()
    assert frames[-1][0] == 1 and frames[-1][3] == {"grpc-status": "0"} and frames[-1][1] & 1
    assert all(len(p) <= 16384 for k, _, _, p in frames if k == 0)
    body = b"".join(p for k, _, _, p in frames if k == 0)
    whole = pb.ModelInferResponse(model_name="m", raw_output_contents=[b"\x07" * size]).SerializeToString()
    assert sent + len(body) == len(whole) + 5


def test_continuation_padding_and_priority_are_read():
    c = Conn()
    block = c.headers("ServerLive", 1)
    padded = bytes([3]) + struct.pack(">IB", 0, 16) + block[:5] + b"\0\0\0"  # PADDED | PRIORITY, 3 pad bytes
    c.send(frame(1, 0x08 | 0x20, 1, padded) + frame(9, 0, 1, block[5:9]) + frame(9, 4, 1, block[9:]))
    c.send(frame(0, 1, 1, message(pb.ServerLiveRequest())))
    frames = c.read()
    assert pb.ServerLiveResponse.FromString(frames[1][3][5:]).live is True
    assert frames[-1][3] == {"grpc-status": "0"}


def test_settings_and_pings_are_acknowledged_and_the_connection_window_kept_open():
    c = Conn()
    c.send(settings(initial_window=1000) + frame(6, 0, 0, b"12345678"))
    assert c.read() == [(4, 1, 0, b""), (6, 1, 0, b"12345678")]
    c.send(frame(6, 1, 0, b"12345678"))  # an ACK is not answered
    assert c.read() == []


@pytest.mark.parametrize(
    ("rpc", "body", "code", "text"),
    [
        ("ModelStreamInfer", message(pb.ModelInferRequest()), grpc.StatusCode.UNIMPLEMENTED, "not served"),
        ("ModelInfer", b"\x01\x00\x00\x00\x01x", grpc.StatusCode.UNIMPLEMENTED, "compressed with ''"),
        ("ModelInfer", b"\x02\x00\x00\x00\x01x", grpc.StatusCode.INTERNAL, "malformed"),
        ("ModelInfer", b"\x00\x00\x00\x00\x09short", grpc.StatusCode.INTERNAL, "malformed"),
        (
            "ModelInfer",
            b"\x00\x00\x00\x00\x02\x0a\xff",
            grpc.StatusCode.INVALID_ARGUMENT,
            "ModelInferRequest",
        ),
    ],
)
def test_calls_that_cannot_be_served_get_a_trailers_only_status(rpc, body, code, text):
    c = Conn()
    c.send(frame(1, 4, 1, c.headers(rpc, 1)) + frame(0, 1, 1, body))
    ((kind, flags, _, fields),) = c.read()
    assert kind == 1 and flags & 1 and fields[":status"] == "200"
    assert fields["grpc-status"] == str(code.value[0]) and text in fields["grpc-message"]
    assert c.service.calls == 0 and not c.sink.closed


def test_gzip_and_deflate_messages_are_read_and_bombs_refused():
    import gzip
    import zlib

    c = Conn(max_message=1000)
    msg = pb.ModelInferRequest(model_name="m", id="2").SerializeToString()
    for encoding, packed in [("gzip", gzip.compress(msg)), ("deflate", zlib.compress(msg))]:
        block = c.headers("ModelInfer", c.next_stream, **{"grpc-encoding": encoding})
        c.send(
            frame(1, 4, c.next_stream, block)
            + frame(0, 1, c.next_stream, b"\x01" + struct.pack(">I", len(packed)) + packed)
        )
        c.next_stream += 2
        *_, (_, _, _, tail) = c.read()
        assert tail == {"grpc-status": "0"}, encoding
    bomb = gzip.compress(b"\x00" * 100_000)
    block = c.headers("ModelInfer", c.next_stream, **{"grpc-encoding": "gzip"})
    c.send(
        frame(1, 4, c.next_stream, block)
        + frame(0, 1, c.next_stream, b"\x01" + struct.pack(">I", len(bomb)) + bomb)
    )
    ((_, _, _, fields),) = c.read()
    assert (
        fields["grpc-status"] == str(grpc.StatusCode.RESOURCE_EXHAUSTED.value[0])
        and "1000" in fields["grpc-message"]
    )
    assert c.service.calls == 2


def test_a_message_over_the_limit_is_refused_before_it_is_read_whole():
    c = Conn(max_message=1000)
    c.send(frame(1, 4, 1, c.headers("ModelInfer", 1)) + frame(0, 0, 1, b"\x00" + struct.pack(">I", 5000)))
    c.send(frame(0, 0, 1, b"x" * 2000))
    (head, rst) = c.read()
    assert head[3]["grpc-status"] == str(grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]) and rst[0] == 3
    c.send(frame(0, 1, 1, b"x" * 3000))  # the rest of it is dropped
    assert c.read() == [] and c.service.calls == 0


def test_after_goaway_new_calls_are_refused_and_never_run():
    import asyncio

    c = Conn()
    c.call("ModelInfer", pb.ModelInferRequest(model_name="m"))
    c.read()
    asyncio.run(c.server.stop(0.1))
    (kind, _, _, payload), *_ = c.read()
    assert kind == 7 and struct.unpack(">II", payload) == (1, 0)  # GOAWAY, last stream 1, NO_ERROR
    c.call("ModelInfer", pb.ModelInferRequest(model_name="m"))
    assert c.read() == [(3, 0, 3, struct.pack(">I", 7))]  # RST_STREAM REFUSED_STREAM
    assert c.service.calls == 1 and c.sink.closed


def test_a_connection_that_does_not_speak_http2_is_closed_with_goaway():
    c = Conn.__new__(Conn)
    c.sink, c.server = Sink(), H2GrpcServer(Service(), 1000)
    proto = c.server.protocol()
    proto.connection_made(c.sink)
    proto.data_received(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert (
        c.sink.closed and c.sink.data[-14] == 7 and c.sink.data[-4:] == b"\0\0\0\1"
    )  # GOAWAY PROTOCOL_ERROR


def test_the_header_decoder_reads_what_hpack_encodes():
    rng = random.Random(7)
    enc, dec = Encoder(), HeaderDecoder(table_size=4096)
    names = [":path", ":authority", "x-unit-id", "user-agent", "grpc-timeout", "te"]
    for _ in range(2000):
        fields = [
            (
                rng.choice([*names, f"x-m{rng.randint(0, 40)}"]),
                "".join(rng.choices("ab-/ 0Z~%", k=rng.randint(0, 200))),
            )
            for _ in range(rng.randint(1, 8))
        ]
        if rng.random() < 0.05:
            enc.header_table_size = rng.choice([0, 256, 4096])  # a table size update in the next block
        block = enc.encode(fields, huffman=rng.random() < 0.5)
        assert dec.decode(block) == dict(fields)
    assert dec.size <= 4096


@pytest.mark.parametrize(
    "block",
    [b"\x80", b"\xff\xff\xff\xff\xff\xff\x7f", b"\x00\x05ab", b"\x3f\xe2\x1f", b"\xbe", b"\x7e\x01a"],
    ids=[
        "index-0",
        "index-overflow",
        "string-past-end",
        "table-size-above-limit",
        "dynamic-index-absent",
        "literal-name-index-absent",
    ],
)
def test_the_header_decoder_refuses_broken_blocks(block):
    with pytest.raises(HeaderError):
        HeaderDecoder().decode(block)


def test_calls_arriving_one_byte_per_read_are_answered_like_calls_in_one_read():
    whole, split = Conn(), Conn()
    reqs = [pb.ModelInferRequest(model_name="m", id=str(n)) for n in (3, 20000, 0)]
    for r in reqs:
        whole.call("ModelInfer", r, **{"x-unit-id": "u"})
    data = b""
    for r in reqs:
        stream, split.next_stream = split.next_stream, split.next_stream + 2
        data += frame(1, 4, stream, split.headers("ModelInfer", stream, **{"x-unit-id": "u"}))
        data += frame(0, 1, stream, message(r))
    for i in range(len(data)):
        split.send(data[i : i + 1])
    assert split.read() == whole.read() and split.service.responses == {"OK": 3}
    assert not split.sink.closed and not split.proto.buf


def test_a_peer_that_never_opens_its_window_is_sent_away_not_buffered_for():
    c = Conn(initial_window=0)  # every answer waits for a WINDOW_UPDATE that never comes
    for _ in range(256):
        c.call("ModelInfer", pb.ModelInferRequest(model_name="m", id="1"))
    assert not c.sink.closed and len(c.proto.pending) == 256
    c.call("ModelInfer", pb.ModelInferRequest(model_name="m", id="1"))
    goaway = [p for k, _, _, p in c.read() if k == 7]
    assert c.sink.closed and struct.unpack(">I", goaway[-1][4:])[0] == 11  # ENHANCE_YOUR_CALM


def test_the_benchmark_client_counts_answers_and_statuses_over_real_sockets():
    """``benchmarks/raw_load.py`` (both protocols) against this server and a one-line HTTP server."""
    import asyncio
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
    import raw_load

    class Http(asyncio.Protocol):
        def connection_made(self, transport):
            self.t = transport

        def data_received(self, data):  # one request per read is enough for this client (one in flight)
            status = b"500 Internal Server Error" if b"unit-7\r\n" in data else b"200 OK"
            self.t.write(b"HTTP/1.1 " + status + b"\r\nContent-Length: 2\r\n\r\nok")

    async def main():
        loop = asyncio.get_running_loop()
        service = Service()
        h2 = H2GrpcServer(service, 1 << 20)
        g = await loop.create_server(h2.protocol, "127.0.0.1", 0)
        h = await loop.create_server(Http, "127.0.0.1", 0)
        body = pb.ModelInferRequest(model_name="m", id="4").SerializeToString()
        gport, hport = g.sockets[0].getsockname()[1], h.sockets[0].getsockname()[1]
        rg = await raw_load.run("grpc", f"127.0.0.1:{gport}", PATH + "ModelInfer", body, 0.5, 2, [])
        bad = await raw_load.run("grpc", f"127.0.0.1:{gport}", PATH + "Nope", body, 0.2, 1, [])
        rh = await raw_load.run("rest", f"127.0.0.1:{hport}", "/x", b"{}", 0.5, 2, ["X-A:b"])
        g.close()
        h.close()
        return rg, bad, rh, service

    rg, bad, rh, service = asyncio.run(main())
    assert rg["answered"] > 10 and rg["errors"] == {} and service.calls == rg["answered"]
    assert bad["answered"] == 0 and set(bad["errors"]) == {"grpc-12"}  # UNIMPLEMENTED
    assert rh["answered"] > 10 and set(rh["errors"]) == {"500"}
