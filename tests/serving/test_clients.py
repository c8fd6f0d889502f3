"""The official OIP v2 clients from PyPI against a real router: tritonclient (HTTP and gRPC) and kserve's
``InferenceRESTClient`` / ``InferenceGRPCClient``: health, metadata, FP32 and INT64 inference, JSON and
binary data, and errors raised the way each library raises them, carrying the router's message.

The libraries run in their own venv (``make clients-venv``; their pins conflict with the main lock),
one library per subprocess (``tests/serving/clients/oip_clients.py``). Expected outputs come from
onnxruntime run here on the model files.
"""

from __future__ import annotations

import json
import subprocess

import numpy as np
import onnxruntime as ort
import pytest
from conftest import start_router
from oip_support import make_int64_onnx
from support import REPO, free_port, make_logreg_onnx, stop

CLIENTS_PY = REPO / ".venv-clients" / "bin" / "python"
DRIVER = REPO / "tests" / "serving" / "clients" / "oip_clients.py"
ROWS = np.array([[0.5, -1.0, 2.0, 0.25], [1.5, 0.0, -0.5, 3.0], [0.0, 0.1, 0.2, 0.3]], dtype=np.float32)
CODES = np.array([[1, 2, 3], [-4, 0, 9], [7, 7, -7]], dtype=np.int64)
NOT_SERVED = "model 'nope' is not served; served models: ['churn', 'codes']"
WRONG_TYPE = "input 'input' must have datatype FP32, got 'FP64'"
WRONG_SHAPE = "input 'input' must have shape [-1, 4], got [3, 3]"


def direct(path, feeds):
    s = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in s.get_outputs()], s.run(None, feeds), strict=True))


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """Run both client libraries against one router; return (their results, expected outputs)."""
    subprocess.run(["make", "-s", "clients-venv"], cwd=REPO, check=True, timeout=1200)
    d = tmp_path_factory.mktemp("clients")
    churn = make_logreg_onnx(d / "churn.onnx", seed=1)
    codes = make_int64_onnx(d / "codes.onnx")
    routes = {
        "models": {
            "churn": {"variants": [{"name": "champion", "uri": str(churn), "weight_bp": 10000}]},
            "codes": {"variants": [{"name": "only", "uri": str(codes), "weight_bp": 10000}]},
        }
    }
    grpc_port = free_port()
    r = start_router(d / "router", routes, args=["--grpc-port", str(grpc_port)])
    try:
        out = {}
        for library in ("triton", "kserve"):
            p = subprocess.run(
                [str(CLIENTS_PY), str(DRIVER), library, r.url, f"127.0.0.1:{grpc_port}"],
                capture_output=True,
                text=True,
                timeout=300,
            )
            assert p.returncode == 0, p.stderr[-3000:]
            out.update(json.loads(p.stdout))
    finally:
        stop(r.proc)
    want = {
        "probabilities": direct(churn, {"input": ROWS})["probabilities"],
        **direct(codes, {"codes": CODES}),
    }
    return out, want


def check_outputs(got, want):
    assert "ok" in got, got
    for name, arr in got["ok"].items():
        expected = want[name]
        assert arr["dtype"] == expected.dtype.name and arr["shape"] == list(expected.shape), (name, arr)
        np.testing.assert_allclose(np.array(arr["data"]).reshape(arr["shape"]), expected, rtol=1e-6)


HEALTH = [
    f"{lib}_{what}"
    for lib in ("triton_http", "triton_grpc", "kserve_rest", "kserve_grpc")
    for what in ("live", "ready", "model_ready")
]


@pytest.mark.parametrize("scenario", HEALTH)
def test_client_health_calls_answer_true(results, scenario):
    assert results[0][scenario] == {"ok": True}


@pytest.mark.parametrize("proto", ["http", "grpc"])
def test_tritonclient_reads_server_and_model_metadata(results, proto):
    got = results[0]
    server = got[f"triton_{proto}_server_metadata"]["ok"]
    assert server["name"] == "modelgate-router" and server["extensions"] == ["binary_tensor_data"]
    assert got[f"triton_{proto}_model_metadata"]["ok"] == {
        "inputs": [{"name": "codes", "datatype": "INT64", "shape": [-1, 3]}],
        "outputs": [
            {"name": "score", "datatype": "FP32", "shape": [-1, 1]},
            {"name": "label", "datatype": "INT64", "shape": [-1]},
        ],
    }


INFER = [
    "triton_http_fp32_binary",
    "triton_http_fp32_json",
    "triton_http_int64_binary",
    "triton_http_int64_json",
    "triton_grpc_fp32_binary",
    "triton_grpc_fp32_json",
    "triton_grpc_int64_binary",
    "triton_grpc_int64_json",
    "kserve_rest_fp32_json",
    "kserve_rest_fp32_binary",
    "kserve_rest_int64_binary",
    "kserve_grpc_fp32",
    "kserve_grpc_int64",
]


@pytest.mark.parametrize("scenario", INFER)
def test_client_inference_answers_what_onnxruntime_answers(results, scenario):
    got, want = results
    check_outputs(got[scenario], want)


def test_int64_outputs_come_back_in_the_order_asked(results):
    got = results[0]
    assert list(got["triton_http_int64_binary"]["ok"]) == ["label", "score"]
    assert list(got["triton_http_int64_json"]["ok"]) == ["score", "label"]
    assert got["triton_grpc_int64_binary"]["ok"]["label"]["data"] == [
        1,
        0,
        1,
    ]  # by hand: 0.5a-0.25b+0.125c > 0


ERRORS = [
    ("triton_http_unknown_model", "InferenceServerException", "404", NOT_SERVED),
    ("triton_http_wrong_datatype", "InferenceServerException", "400", WRONG_TYPE),
    ("triton_http_wrong_shape", "InferenceServerException", "400", WRONG_SHAPE),
    ("triton_http_pin_without_key", "InferenceServerException", "403", "X-Variant needs a bearer key"),
    ("triton_http_unknown_model_metadata", "InferenceServerException", "404", NOT_SERVED),
    ("triton_grpc_unknown_model", "InferenceServerException", "StatusCode.NOT_FOUND", NOT_SERVED),
    ("triton_grpc_wrong_datatype", "InferenceServerException", "StatusCode.INVALID_ARGUMENT", WRONG_TYPE),
    ("triton_grpc_wrong_shape", "InferenceServerException", "StatusCode.INVALID_ARGUMENT", WRONG_SHAPE),
    ("triton_grpc_pin_without_key", "InferenceServerException", "StatusCode.PERMISSION_DENIED", "X-Variant"),
    ("triton_grpc_unknown_model_metadata", "InferenceServerException", "StatusCode.NOT_FOUND", NOT_SERVED),
    ("kserve_rest_unknown_model", "HTTPStatusError", "404", NOT_SERVED),
    ("kserve_rest_wrong_datatype", "HTTPStatusError", "400", WRONG_TYPE),
    ("kserve_grpc_unknown_model", "AioRpcError", "StatusCode.NOT_FOUND", NOT_SERVED),
    ("kserve_grpc_wrong_shape", "AioRpcError", "StatusCode.INVALID_ARGUMENT", WRONG_SHAPE),
]


@pytest.mark.parametrize(("scenario", "error", "status", "message"), ERRORS, ids=[e[0] for e in ERRORS])
def test_client_errors_are_raised_as_the_library_raises_them_with_our_message(
    results, scenario, error, status, message
):
    got = results[0][scenario]
    assert got["error"] == error and got["status"] == status, got
    assert message in got["message"], got
