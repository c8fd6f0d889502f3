"""OIP v2 over gRPC on a real router process: the same data plane as REST (answers, routing, sticky
units, pinning, errors as status codes, events, metrics) and a drain on SIGTERM that loses nothing.

Expected outputs come from onnxruntime run directly on the model files.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time

import grpc
import numpy as np
import onnxruntime as ort
import pyarrow.parquet as pq
import pytest
from conftest import PIN_TOKEN, READ_TOKEN, start_router, two_variants
from oip_support import OipGrpc, make_int64_onnx, raw_outputs
from support import free_port, make_logreg_onnx, stop

ROWS = np.array([[0.5, -1.0, 2.0, 0.25], [1.5, 0.0, -0.5, 3.0], [0.0, 0.1, 0.2, 0.3]], dtype=np.float32)
CODES = np.array([[1, 2, 3], [-4, 0, 9], [7, 7, -7]], dtype=np.int64)


def direct(path, feeds):
    s = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in s.get_outputs()], s.run(None, feeds), strict=True))


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("models")
    return {
        "a": make_logreg_onnx(d / "a.onnx", seed=1),
        "b": make_logreg_onnx(d / "b.onnx", seed=2),
        "codes": make_int64_onnx(d / "codes.onnx"),
    }


@pytest.fixture(scope="module")
def served(tmp_path_factory, models):
    routes = two_variants(models["a"], models["b"], canary_bp=5000)
    routes["models"]["codes"] = {
        "variants": [{"name": "only", "uri": str(models["codes"]), "weight_bp": 10000}]
    }
    port = free_port()
    r = start_router(tmp_path_factory.mktemp("grpc-router"), routes, args=["--grpc-port", str(port)])
    client = OipGrpc(f"127.0.0.1:{port}")
    yield r, client
    client.close()
    stop(r.proc)


def test_health_and_server_metadata_over_grpc(served):
    _, g = served
    assert g.call("ServerLive", g.pb.ServerLiveRequest())[0].live is True
    assert g.call("ServerReady", g.pb.ServerReadyRequest())[0].ready is True
    meta = g.call("ServerMetadata", g.pb.ServerMetadataRequest())[0]
    assert meta.name == "modelgate-router" and "binary_tensor_data" in meta.extensions
    assert g.call("ModelReady", g.pb.ModelReadyRequest(name="churn"))[0].ready is True


def test_model_metadata_over_grpc_equals_the_rest_document(served):
    r, g = served
    with r.client() as c:
        rest = c.get("/v2/models/codes").json()
    m = g.call("ModelMetadata", g.pb.ModelMetadataRequest(name="codes"))[0]
    assert m.name == "codes" and list(m.versions) == rest["versions"] and m.platform == "onnxruntime_onnx"
    assert [(t.name, t.datatype, list(t.shape)) for t in m.inputs] == [("codes", "INT64", [-1, 3])]
    assert [(t.name, t.datatype, list(t.shape)) for t in m.outputs] == [
        ("score", "FP32", [-1, 1]),
        ("label", "INT64", [-1]),
    ]


@pytest.mark.parametrize("raw", [True, False], ids=["raw_contents", "typed_contents"])
def test_fp32_infer_over_grpc_answers_what_onnxruntime_answers(served, models, raw):
    _, g = served
    resp, call = g.call(
        "ModelInfer", g.infer("churn", {"input": ROWS}, raw=raw, id="req-7"), [("x-unit-id", "u-1")]
    )
    md = dict(call.initial_metadata())
    want = direct(models["a"] if md["x-variant"] == "champion" else models["b"], {"input": ROWS})
    out = raw_outputs(resp)
    assert list(out) == ["probabilities"] and resp.outputs[0].datatype == "FP32"
    np.testing.assert_allclose(out["probabilities"], want["probabilities"], rtol=1e-6)
    assert resp.id == "req-7" == md["x-request-id"]
    assert resp.model_name == "churn" and resp.model_version == md["x-model-version"]


@pytest.mark.parametrize("raw", [True, False], ids=["raw_contents", "typed_contents"])
def test_int64_in_and_out_over_grpc(served, models, raw):
    _, g = served
    resp, _ = g.call("ModelInfer", g.infer("codes", {"codes": CODES}, raw=raw))
    out = raw_outputs(resp)
    want = direct(models["codes"], {"codes": CODES})
    np.testing.assert_allclose(out["score"], CODES.astype(np.float32) @ np.array([[0.5], [-0.25], [0.125]]))
    np.testing.assert_array_equal(out["label"], want["label"])
    assert out["label"].dtype == np.int64 and out["label"].tolist() == [1, 0, 1]


def test_requested_outputs_only_those_in_that_order(served):
    _, g = served
    req = g.infer("codes", {"codes": CODES})
    req.outputs.add(name="label")
    resp, _ = g.call("ModelInfer", req)
    assert [o.name for o in resp.outputs] == ["label"] and len(resp.raw_output_contents) == 1


def test_sticky_unit_ids_get_the_same_variant_over_grpc_and_rest(served):
    r, g = served
    body = {"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": ROWS[0].tolist()}]}
    seen = set()
    with r.client() as c:
        for i in range(24):
            unit = f"unit-{i}"
            _, call = g.call("ModelInfer", g.infer("churn", {"input": ROWS[:1]}), [("x-unit-id", unit)])
            via_grpc = dict(call.initial_metadata())["x-variant"]
            via_rest = c.post("/v2/models/churn/infer", json=body, headers={"X-Unit-Id": unit}).headers[
                "x-variant"
            ]
            assert via_grpc == via_rest, unit
            seen.add(via_grpc)
    assert seen == {"champion", "canary"}  # a 50/50 split over 24 units uses both


def test_pinning_needs_a_pin_key_over_grpc_too(served):
    _, g = served
    req = g.infer("churn", {"input": ROWS})
    with pytest.raises(grpc.RpcError) as e:
        g.call("ModelInfer", req, [("x-variant", "canary")])
    assert e.value.code() == grpc.StatusCode.PERMISSION_DENIED and "pin" in e.value.details()
    with pytest.raises(grpc.RpcError) as e:
        g.call("ModelInfer", req, [("x-variant", "canary"), ("authorization", f"Bearer {READ_TOKEN}")])
    assert e.value.code() == grpc.StatusCode.PERMISSION_DENIED
    for _ in range(5):
        _, call = g.call(
            "ModelInfer", req, [("x-variant", "canary"), ("authorization", f"Bearer {PIN_TOKEN}")]
        )
        assert dict(call.initial_metadata())["x-variant"] == "canary"


def _rpc_error(g, req, metadata=None):
    with pytest.raises(grpc.RpcError) as e:
        g.call("ModelInfer", req, metadata)
    return e.value.code(), e.value.details()


def test_bad_requests_get_status_codes_naming_the_problem(served):
    _, g = served
    pb = g.pb
    assert _rpc_error(g, g.infer("nope", {"input": ROWS})) == (
        grpc.StatusCode.NOT_FOUND,
        "model 'nope' is not served; served models: ['churn', 'codes']",
    )
    code, msg = _rpc_error(g, g.infer("churn", {"input": ROWS.astype(np.float64)}))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "must have datatype FP32" in msg
    short = g.infer("churn", {"input": ROWS})
    short.raw_input_contents[0] = short.raw_input_contents[0][:-4]
    code, msg = _rpc_error(g, short)
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "hold 44 bytes" in msg and "needs 48" in msg
    extra = g.infer("churn", {"input": ROWS})
    extra.raw_input_contents.append(b"\0" * 4)
    code, msg = _rpc_error(g, extra)
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "2 buffers for 1 inputs" in msg
    code, msg = _rpc_error(g, pb.ModelInferRequest(model_name="churn"))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "no inputs" in msg
    wrong = g.infer("churn", {"input": ROWS})
    wrong.inputs[0].name = "x"
    code, msg = _rpc_error(g, wrong)
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "no input 'x'" in msg
    nan = g.infer("churn", {"input": np.full((1, 4), np.nan, dtype=np.float32)})
    code, msg = _rpc_error(g, nan)
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "NaN" in msg
    typed = g.infer("churn", {"input": ROWS}, raw=False)
    typed.inputs[0].shape[:] = [2, 4]
    code, msg = _rpc_error(g, typed)
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "12 values do not fill shape [2, 4]" in msg
    code, msg = _rpc_error(g, g.infer("churn", {"input": ROWS}, model_version="v-none"))
    assert code == grpc.StatusCode.NOT_FOUND and "no version or variant 'v-none'" in msg
    with pytest.raises(grpc.RpcError) as e:
        g.call("ModelMetadata", pb.ModelMetadataRequest(name="nope"))
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
    unknown_out = g.infer("codes", {"codes": CODES})
    unknown_out.outputs.add(name="nope")
    code, msg = _rpc_error(g, unknown_out)
    assert code == grpc.StatusCode.NOT_FOUND and "no output 'nope'" in msg


def test_grpc_answers_are_counted_in_metrics(served):
    r, g = served

    def ok_count():
        with r.client() as c:
            for line in c.get("/metrics").text.splitlines():
                if line.startswith('router_grpc_responses_total{code="OK"}'):
                    return int(line.split()[-1])
        return 0

    before = ok_count()
    for _ in range(3):
        g.call("ModelInfer", g.infer("codes", {"codes": CODES}))
    assert ok_count() == before + 3


def count_events(root):
    return sum(pq.read_table(f).num_rows for f in sorted(root.rglob("*.parquet")))


def test_sigterm_drains_grpc_readiness_false_answers_kept_every_answer_an_event(tmp_path, models):
    port = free_port()
    r = start_router(
        tmp_path / "drain",
        two_variants(models["a"], models["b"]),
        args=["--grpc-port", str(port)],
        extra_env={"ROUTER_EVENTS_FLUSH_SECONDS": "30", "ROUTER_SHUTDOWN_GRACE_SECONDS": "1.5"},
    )
    g = OipGrpc(f"127.0.0.1:{port}")
    results: list[tuple[float, str]] = []
    halt = threading.Event()

    def load(unit):
        req = g.infer("churn", {"input": ROWS})
        while not halt.is_set():
            try:
                g.call("ModelInfer", req, [("x-unit-id", unit)])
                results.append((time.monotonic(), "OK"))
            except grpc.RpcError as e:
                results.append((time.monotonic(), e.code().name))
                time.sleep(0.05)

    threads = [threading.Thread(target=load, args=(f"u{i}",)) for i in range(4)]
    try:
        for t in threads:
            t.start()
        time.sleep(1.0)
        t_sig = time.monotonic()
        os.killpg(r.proc.pid, signal.SIGTERM)
        time.sleep(0.4)
        ready = g.call("ServerReady", g.pb.ServerReadyRequest())[0].ready
        rc = r.proc.wait(timeout=60)
    finally:
        halt.set()
        for t in threads:
            t.join(30)
        g.close()
        stop(r.proc)
    assert rc == 0, r.log()
    assert ready is False
    answered = sum(1 for _, s in results if s == "OK")
    in_grace = sum(1 for t, s in results if s == "OK" and t_sig + 0.1 <= t <= t_sig + 1.2)
    assert answered > 50 and in_grace > 4, (answered, in_grace)
    assert count_events(r.events_root) == answered
    # calls racing the stop are refused (UNAVAILABLE, or CANCELLED when they reached the server as it shut
    # down) and never ran: every answered call is exactly one event, so none was run and then lost
    refused = [(round(t - t_sig, 3), s) for t, s in results if s != "OK"]
    assert {s for _, s in refused} <= {"UNAVAILABLE", "CANCELLED"}, refused[:20]
    assert all(t > 1.2 for t, _ in refused), refused[:20]  # nothing refused during the grace period
    assert "gRPC server on port" in r.log() and "events flushed" in r.log()


def test_grpc_serves_tls_with_the_routers_certificate(tmp_path, models):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key)),
            *("-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1"),
            *("-addext", "subjectAltName=IP:127.0.0.1"),
        ],
        check=True,
        capture_output=True,
    )
    port = free_port()
    r = start_router(
        tmp_path / "tls",
        two_variants(models["a"], models["b"]),
        args=["--grpc-port", str(port), "--ssl-certfile", str(cert), "--ssl-keyfile", str(key)],
        scheme="https",
        wait=False,
    )
    g = OipGrpc(f"127.0.0.1:{port}")
    g.channel = grpc.secure_channel(f"127.0.0.1:{port}", grpc.ssl_channel_credentials(cert.read_bytes()))
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                resp, _ = g.call("ModelInfer", g.infer("churn", {"input": ROWS}))
                break
            except grpc.RpcError as e:
                assert e.code() == grpc.StatusCode.UNAVAILABLE and time.monotonic() < deadline, r.log()
                assert r.proc.poll() is None, r.log()
                time.sleep(0.25)
        assert raw_outputs(resp)["probabilities"].shape == (3, 2)
        plain = OipGrpc(f"127.0.0.1:{port}")  # a plaintext client cannot talk to the TLS port
        with pytest.raises(grpc.RpcError) as e:
            plain.call("ServerLive", plain.pb.ServerLiveRequest())
        assert e.value.code() == grpc.StatusCode.UNAVAILABLE
        plain.close()
    finally:
        g.close()
        stop(r.proc)


def test_a_grpc_port_in_use_fails_the_start_with_a_message(tmp_path, models):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(RuntimeError) as e:
            start_router(
                tmp_path / "busy", two_variants(models["a"], models["b"]), args=["--grpc-port", str(port)]
            )
    assert f"gRPC cannot listen on 127.0.0.1:{port}" in str(e.value)


def test_every_worker_serves_the_grpc_port(tmp_path, models):
    port = free_port()
    r = start_router(
        tmp_path / "workers",
        two_variants(models["a"], models["b"]),
        args=["--grpc-port", str(port), "--workers", "2"],
    )
    pids = set()
    try:
        deadline = time.monotonic() + 60
        while len(pids) < 2 and time.monotonic() < deadline:
            g = OipGrpc(f"127.0.0.1:{port}")  # a new connection each time: the kernel spreads them
            try:
                _, call = g.call("ModelInfer", g.infer("churn", {"input": ROWS}))
                pids.add(dict(call.initial_metadata())["x-request-id"].split("-")[0])  # pid prefix
            except grpc.RpcError:
                time.sleep(0.2)  # the second worker may still be loading
            finally:
                g.close()
    finally:
        stop(r.proc)
    assert len(pids) == 2, r.log()


def test_calls_the_server_cannot_serve_get_status_codes_not_broken_connections(served):
    _, g = served
    ch = g.channel
    garbage = ch.unary_unary("/inference.GRPCInferenceService/ModelInfer")
    with pytest.raises(grpc.RpcError) as e:
        garbage(b"\x0a\xff\xff\xff\xff\x0f", timeout=30)  # a length-delimited field running past the end
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "ModelInferRequest" in e.value.details()
    streaming = ch.unary_unary("/inference.GRPCInferenceService/ModelStreamInfer")
    with pytest.raises(grpc.RpcError) as e:
        streaming(b"", timeout=30)
    assert e.value.code() == grpc.StatusCode.UNIMPLEMENTED
    gz = ch.unary_unary(
        "/inference.GRPCInferenceService/ModelInfer", request_serializer=lambda m: m.SerializeToString()
    )
    answer = gz(g.infer("churn", {"input": ROWS}), timeout=30, compression=grpc.Compression.Gzip)
    assert raw_outputs(g.pb.ModelInferResponse.FromString(answer))["probabilities"].shape == (3, 2)
    big = np.zeros((5 * 1024 * 1024 // 16 + 1, 4), dtype=np.float32)  # > the 4 MiB body limit
    code, msg = _rpc_error(g, g.infer("churn", {"input": big}))
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and "4194304" in msg
    resp, _ = g.call("ModelInfer", g.infer("churn", {"input": ROWS}))  # the same connection still serves
    assert raw_outputs(resp)["probabilities"].shape == (3, 2)


def test_large_answers_arrive_whole_through_flow_control(served, models):
    _, g = served
    rows = np.random.default_rng(5).normal(size=(20000, 4)).astype(np.float32)  # answer ~160 kB > 64 kB
    resp, _ = g.call("ModelInfer", g.infer("churn", {"input": rows}))
    want = direct(models["a"], {"input": rows})["probabilities"]
    other = direct(models["b"], {"input": rows})["probabilities"]
    got = raw_outputs(resp)["probabilities"]
    assert got.shape == (20000, 2)
    assert np.allclose(got, want, atol=1e-6) or np.allclose(got, other, atol=1e-6)


def test_the_grpcio_server_is_still_selectable(tmp_path, models):
    port = free_port()
    r = start_router(
        tmp_path / "grpcio",
        two_variants(models["a"], models["b"]),
        args=["--grpc-port", str(port)],
        extra_env={"ROUTER_GRPC_SERVER": "grpcio"},
    )
    g = OipGrpc(f"127.0.0.1:{port}")
    try:
        resp, call = g.call("ModelInfer", g.infer("churn", {"input": ROWS}), [("x-unit-id", "u1")])
        assert raw_outputs(resp)["probabilities"].shape == (3, 2)
        assert dict(call.initial_metadata())["x-variant"] in {"champion", "canary"}
        code, _ = _rpc_error(g, g.infer("nope", {"input": ROWS}))
        assert code == grpc.StatusCode.NOT_FOUND
    finally:
        g.close()
        stop(r.proc)
    assert "gRPC (OIP v2, grpcio)" in r.log()
