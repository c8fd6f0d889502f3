"""HTTP on the wire: the scoring fast path and uvicorn's ASGI path answer alike, in order, and close
when they must (raw sockets, responses parsed with h11)."""

from __future__ import annotations

import socket
from urllib.parse import urlparse

import h11
import orjson
import pytest
from conftest import start_router, two_variants
from support import make_logreg_onnx

ROW = {"inputs": [[0.5, -1.0, 2.0, 0.25]]}


@pytest.fixture(scope="module")
def router(tmp_path_factory):
    d = tmp_path_factory.mktemp("wire")
    a = make_logreg_onnx(d / "a.onnx", seed=1)
    r = start_router(d / "router", two_variants(a, a, canary_bp=0))
    yield r
    r.stop()


def request(method: str, target: str, body: bytes = b"", headers: dict[str, str] | None = None) -> bytes:
    lines = [f"{method} {target} HTTP/1.1", "host: test"]
    if body or method == "POST":
        lines += ["content-type: application/json", f"content-length: {len(body)}"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def read_responses(sock: socket.socket, n: int) -> list[tuple[int, dict[bytes, bytes], bytes]]:
    """Read ``n`` responses (final ones; 1xx skipped) from a keep-alive connection."""
    conn = h11.Connection(h11.CLIENT)
    out: list[tuple[int, dict[bytes, bytes], bytes]] = []
    while len(out) < n:
        # h11 needs a request of its own before it parses a response; fake one per response
        conn.send(h11.Request(method="POST", target="/", headers=[("host", "t"), ("content-length", "0")]))
        conn.send(h11.EndOfMessage())
        status, headers, body = 0, {}, b""
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                data = sock.recv(65536)
                conn.receive_data(data)
                if not data and conn.their_state is not h11.SEND_RESPONSE:
                    raise AssertionError(f"connection closed after {len(out)} responses")
                continue
            if isinstance(event, h11.InformationalResponse):
                continue
            if isinstance(event, h11.Response):
                status, headers = event.status_code, dict(event.headers)
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                break
            elif isinstance(event, h11.ConnectionClosed):
                raise AssertionError("connection closed mid-response")
        out.append((status, headers, body))
        if conn.our_state is h11.MUST_CLOSE or conn.their_state is h11.MUST_CLOSE:
            break
        conn.start_next_cycle()
    return out


def connect(router) -> socket.socket:
    u = urlparse(router.url)
    s = socket.create_connection((u.hostname, u.port), timeout=30)
    s.settimeout(30)
    return s


def test_pipelined_requests_are_answered_in_order_across_both_paths(router):
    body = orjson.dumps(ROW)
    oip = orjson.dumps(
        {"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": [0.5, -1, 2, 0.25]}]}
    )
    burst = (
        request("POST", "/invocations", body)  # fast path
        + request("GET", "/v2/health/live")  # ASGI
        + request("POST", "/v2/models/churn/infer", oip)  # after an ASGI request still running: ASGI
        + request("POST", "/invocations", b"{broken")  # bad JSON
        + request("GET", "/v2/models/churn/ready")
        + request("POST", "/models/churn/invocations", body)
    )
    with connect(router) as s:
        s.sendall(burst)
        got = read_responses(s, 6)
    assert [g[0] for g in got] == [200, 200, 200, 400, 200, 200]
    assert "predictions" in orjson.loads(got[0][2])
    assert orjson.loads(got[1][2]) == {"live": True}
    assert orjson.loads(got[2][2])["model_name"] == "churn"
    assert "JSON" in orjson.loads(got[3][2])["error"]
    assert orjson.loads(got[4][2])["ready"] is True
    assert orjson.loads(got[5][2]) == orjson.loads(got[0][2])


def test_fast_path_and_asgi_path_answer_the_same(router):
    """``Expect: 100-continue`` sends a scoring request through uvicorn's ASGI path."""
    body = orjson.dumps(ROW)
    with connect(router) as s:
        s.sendall(request("POST", "/invocations", body, {"x-request-id": "same"}))
        (fast,) = read_responses(s, 1)
        s.sendall(request("POST", "/invocations", body, {"x-request-id": "same", "expect": "100-continue"}))
        (asgi,) = read_responses(s, 1)
    assert fast[0] == asgi[0] == 200
    assert fast[2] == asgi[2]
    assert set(fast[1]) == set(asgi[1])  # same header names (date included)
    for name in (b"x-variant", b"x-model-version", b"x-request-id", b"content-type", b"content-length"):
        assert fast[1][name] == asgi[1][name], name
    assert orjson.loads(fast[2])["predictions"]


@pytest.mark.parametrize(
    "version,headers",
    [("HTTP/1.0", {}), ("HTTP/1.1", {"connection": "close"})],
)
def test_connection_closes_after_the_answer_when_the_client_asks(router, version, headers):
    body = orjson.dumps(ROW)
    raw = request("POST", "/invocations", body, headers).replace(b"HTTP/1.1", version.encode(), 1)
    with connect(router) as s:
        s.sendall(raw)
        data = b""
        while chunk := s.recv(65536):  # the server closes: recv returns b"" instead of blocking
            data += chunk
    head, _, payload = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    assert b"connection: close" in head.lower()
    assert "predictions" in orjson.loads(payload)


def test_query_string_and_escaped_path_reach_the_model(router):
    body = orjson.dumps(ROW)
    with connect(router) as s:
        s.sendall(
            request("POST", "/invocations?trace=1", body)
            + request("POST", "/models/ch%75rn/invocations", body)
        )
        got = read_responses(s, 2)
    assert [g[0] for g in got] == [200, 200]
    assert got[0][2] == got[1][2]


def test_bytes_split_across_packets_are_joined(router):
    body = orjson.dumps({"inputs": [[0.5, -1.0, 2.0, 0.25]] * 50})
    raw = request("POST", "/invocations", body)
    with connect(router) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for i in range(0, len(raw), 97):
            s.sendall(raw[i : i + 97])
        (got,) = read_responses(s, 1)
    assert got[0] == 200
    assert len(orjson.loads(got[2])["predictions"]["probabilities"]) == 50
