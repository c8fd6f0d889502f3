"""The binary tensor extension on REST (``Inference-Header-Content-Length``): binary inputs and outputs
answer what onnxruntime answers, outputs are selected and ordered, malformed bodies get a 400 naming the
problem. Bodies are built here by hand from the extension's layout (JSON header, then raw little-endian
bytes), not with the router's code. In-process, plus one check of the headers on the real wire.
"""

from __future__ import annotations

import json

import httpx
import numpy as np
import onnxruntime as ort
import pytest
from conftest import InProcessRouter
from oip_support import make_int64_onnx
from support import make_logreg_onnx

ROWS = np.array([[0.5, -1.0, 2.0, 0.25], [1.5, 0.0, -0.5, 3.0], [0.0, 0.1, 0.2, 0.3]], dtype=np.float32)
CODES = np.array([[1, 2, 3], [-4, 0, 9], [7, 7, -7]], dtype=np.int64)


def direct(path, feeds):
    s = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in s.get_outputs()], s.run(None, feeds), strict=True))


def routes(models):
    return {
        "models": {
            "churn": {"variants": [{"name": "only", "uri": str(models["a"]), "weight_bp": 10000}]},
            "codes": {"variants": [{"name": "only", "uri": str(models["codes"]), "weight_bp": 10000}]},
        }
    }


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("models")
    return {"a": make_logreg_onnx(d / "a.onnx", seed=1), "codes": make_int64_onnx(d / "codes.onnx")}


@pytest.fixture(scope="module")
def router(tmp_path_factory, models):
    r = InProcessRouter(tmp_path_factory.mktemp("router"), routes(models))
    yield r
    r.close()


def binary_body(doc, blobs):
    head = json.dumps(doc).encode()
    return head + b"".join(blobs), {"Inference-Header-Content-Length": str(len(head))}


def split(response):
    n = int(response.headers["inference-header-content-length"])
    doc = json.loads(response.content[:n])
    rest, out = response.content[n:], {}
    dtypes = {"FP32": "<f4", "INT64": "<i8"}
    for o in doc["outputs"]:
        if "parameters" in o and "binary_data_size" in o["parameters"]:
            size = o["parameters"]["binary_data_size"]
            out[o["name"]] = np.frombuffer(rest[:size], dtype=dtypes[o["datatype"]]).reshape(o["shape"])
            rest = rest[size:]
        else:
            out[o["name"]] = np.array(o["data"]).reshape(o["shape"])
    assert rest == b""
    return doc, out


def test_binary_fp32_input_and_all_outputs_binary(router, models):
    body, headers = binary_body(
        {
            "inputs": [
                {"name": "input", "shape": [3, 4], "datatype": "FP32", "parameters": {"binary_data_size": 48}}
            ],
            "parameters": {"binary_data_output": True},
        },
        [ROWS.astype("<f4").tobytes()],
    )
    with router.client() as c:
        r = c.post("/v2/models/churn/infer", content=body, headers=headers)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/octet-stream"
    doc, out = split(r)
    assert (
        doc["outputs"][0]["parameters"] == {"binary_data_size": 3 * 2 * 4} and "data" not in doc["outputs"][0]
    )
    np.testing.assert_allclose(
        out["probabilities"], direct(models["a"], {"input": ROWS})["probabilities"], rtol=1e-6
    )


def test_binary_int64_input_with_selected_outputs_one_binary_one_json(router, models):
    body, headers = binary_body(
        {
            "inputs": [
                {
                    "name": "codes",
                    "shape": [3, 3],
                    "datatype": "INT64",
                    "parameters": {"binary_data_size": 72},
                }
            ],
            "outputs": [{"name": "label", "parameters": {"binary_data": True}}, {"name": "score"}],
        },
        [CODES.astype("<i8").tobytes()],
    )
    with router.client() as c:
        r = c.post("/v2/models/codes/infer", content=body, headers=headers)
    assert r.status_code == 200, r.text
    doc, out = split(r)
    assert [o["name"] for o in doc["outputs"]] == ["label", "score"]
    want = direct(models["codes"], {"codes": CODES})
    np.testing.assert_array_equal(out["label"], want["label"])
    assert out["label"].tolist() == [1, 0, 1]  # 0.5a - 0.25b + 0.125c > 0, by hand
    np.testing.assert_allclose(out["score"], want["score"], rtol=1e-6)


def test_binary_input_json_answer_and_json_request_with_outputs(router, models):
    body, headers = binary_body(
        {
            "inputs": [
                {"name": "input", "shape": [3, 4], "datatype": "FP32", "parameters": {"binary_data_size": 48}}
            ]
        },
        [ROWS.tobytes()],
    )
    want = direct(models["a"], {"input": ROWS})["probabilities"]
    with router.client() as c:
        r = c.post("/v2/models/churn/infer", content=body, headers=headers)
        assert r.status_code == 200 and r.headers["content-type"] == "application/json"
        assert "inference-header-content-length" not in r.headers
        np.testing.assert_allclose(np.array(r.json()["outputs"][0]["data"]).reshape(3, 2), want, rtol=1e-6)
        # a plain JSON request may ask for binary outputs too
        r = c.post(
            "/v2/models/churn/infer",
            json={
                "inputs": [
                    {"name": "input", "shape": [3, 4], "datatype": "FP32", "data": ROWS.ravel().tolist()}
                ],
                "outputs": [{"name": "probabilities", "parameters": {"binary_data": True}}],
            },
        )
        assert r.status_code == 200
        np.testing.assert_allclose(split(r)[1]["probabilities"], want, rtol=1e-6)


@pytest.mark.parametrize(
    ("doc", "blobs", "length", "message"),
    [
        ({"inputs": []}, [], "abc", "Inference-Header-Content-Length must be an integer"),
        ({"inputs": []}, [], "100000", "Inference-Header-Content-Length must be an integer"),
        (
            {
                "inputs": [
                    {
                        "name": "input",
                        "shape": [3, 4],
                        "datatype": "FP32",
                        "parameters": {"binary_data_size": 46},
                    }
                ]
            },
            [ROWS.tobytes()],
            None,
            "is not a whole number of FP32 values or runs past the end",
        ),
        (
            {
                "inputs": [
                    {
                        "name": "input",
                        "shape": [3, 4],
                        "datatype": "FP32",
                        "parameters": {"binary_data_size": 40},
                    }
                ]
            },
            [ROWS.tobytes()],
            None,
            "8 bytes after the inputs' binary data",
        ),
        (
            {
                "inputs": [
                    {
                        "name": "input",
                        "shape": [2, 4],
                        "datatype": "FP32",
                        "parameters": {"binary_data_size": 48},
                    }
                ]
            },
            [ROWS.tobytes()],
            None,
            "12 values do not fill shape [2, 4]",
        ),
        (
            {
                "inputs": [
                    {
                        "name": "input",
                        "shape": [3, 4],
                        "datatype": "BYTES",
                        "parameters": {"binary_data_size": 48},
                    }
                ]
            },
            [ROWS.tobytes()],
            None,
            "datatype 'BYTES' cannot be sent as binary data",
        ),
        (
            {
                "inputs": [
                    {
                        "name": "input",
                        "shape": [3, 4],
                        "datatype": "FP64",
                        "parameters": {"binary_data_size": 96},
                    }
                ]
            },
            [ROWS.astype(np.float64).tobytes()],
            None,
            "must have datatype FP32",
        ),
        (
            {
                "inputs": [
                    {
                        "name": "input",
                        "shape": [3, 4],
                        "datatype": "FP32",
                        "parameters": {"binary_data_size": -1},
                    }
                ]
            },
            [],
            None,
            "binary_data_size must be a non-negative integer",
        ),
        (
            {
                "inputs": [
                    {
                        "name": "input",
                        "shape": [3, 4],
                        "datatype": "FP32",
                        "parameters": {"binary_data_size": 48},
                    }
                ],
                "outputs": [{"name": "nope"}],
            },
            [ROWS.tobytes()],
            None,
            "model has no output 'nope'",
        ),
    ],
    ids=[
        "not_int",
        "past_end",
        "partial_value",
        "trailing_bytes",
        "shape",
        "bytes_type",
        "datatype",
        "negative",
        "output",
    ],
)
def test_malformed_binary_requests_get_400_naming_the_problem(router, doc, blobs, length, message):
    body, headers = binary_body(doc, blobs)
    if length is not None:
        headers["Inference-Header-Content-Length"] = length
    with router.client() as c:
        r = c.post("/v2/models/churn/infer", content=body, headers=headers)
    assert r.status_code == 400, r.text
    assert message in r.json()["error"]


def test_binary_answer_on_the_wire_has_its_headers(router_factory, models):
    r = router_factory(routes(models))
    body, headers = binary_body(
        {
            "inputs": [
                {
                    "name": "codes",
                    "shape": [3, 3],
                    "datatype": "INT64",
                    "parameters": {"binary_data_size": 72},
                }
            ],
            "parameters": {"binary_data_output": True},
        },
        [CODES.tobytes()],
    )
    resp = httpx.post(f"{r.url}/v2/models/codes/infer", content=body, headers=headers, timeout=30)
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "application/octet-stream"
    assert int(resp.headers["content-length"]) == len(resp.content)
    _, out = split(resp)
    assert out["label"].tolist() == [1, 0, 1] and out["score"].shape == (3, 1)


def test_an_unknown_output_is_refused_before_scoring(router):
    def scored(c):
        return sum(
            float(line.split()[-1])
            for line in c.get("/metrics").text.splitlines()
            if line.startswith('router_requests_total{model="churn"')
        )

    body = {
        "inputs": [{"name": "input", "shape": [3, 4], "datatype": "FP32", "data": ROWS.ravel().tolist()}],
        "outputs": [{"name": "probabilities"}, {"name": "nope"}],
    }
    with router.client() as c:
        before = scored(c)
        r = c.post("/v2/models/churn/infer", json=body)
        assert r.status_code == 400 and "model has no output 'nope'" in r.json()["error"]
        assert scored(c) == before  # no statistics, no event: the model never ran
        body["outputs"] = [{"name": "probabilities"}]
        assert c.post("/v2/models/churn/infer", json=body).status_code == 200
        assert scored(c) == before + 1
