"""Both protocols answer what onnxruntime answers; bad input gets a 4xx naming the problem; auth.

In-process against ``create_app``; the body-limit test runs a process (chunked upload on the wire).
"""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from conftest import ADMIN_TOKEN, PIN_TOKEN, READ_TOKEN, InProcessRouter, two_variants
from support import make_logreg_onnx

ROWS = np.array([[0.5, -1.0, 2.0, 0.25], [1.5, 0.0, -0.5, 3.0], [0.0, 0.1, 0.2, 0.3]], dtype=np.float32)


def direct(path, rows=ROWS):
    s = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return s.run(None, {"input": rows})[0]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("models")
    return {"a": make_logreg_onnx(d / "a.onnx", seed=1), "b": make_logreg_onnx(d / "b.onnx", seed=2)}


@pytest.fixture(scope="module")
def router(tmp_path_factory, models):
    """In-process (``create_app``): these tests exercise parsing, protocols and auth, not the process."""
    r = InProcessRouter(
        tmp_path_factory.mktemp("router"), two_variants(models["a"], models["b"], canary_bp=0)
    )
    yield r
    r.close()


def test_oip_v2_infer_answers_what_onnxruntime_answers(router, models):
    want = direct(models["a"])
    with router.client() as c:
        r = c.post(
            "/v2/models/churn/infer",
            json={
                "inputs": [
                    {"name": "input", "shape": [3, 4], "datatype": "FP32", "data": ROWS.ravel().tolist()}
                ]
            },
        )
        assert r.status_code == 200, r.text
        out = r.json()["outputs"][0]
        assert out["name"] == "probabilities" and out["datatype"] == "FP32" and out["shape"] == [3, 2]
        np.testing.assert_allclose(np.array(out["data"]).reshape(3, 2), want, rtol=1e-6)
        assert r.headers["x-variant"] == "champion"
        assert r.headers["x-model-version"] == r.json()["model_version"]
        assert r.headers["x-request-id"] == r.json()["id"]
        # nested data is accepted too
        r2 = c.post(
            "/v2/models/churn/infer",
            json={"inputs": [{"name": "input", "shape": [3, 4], "datatype": "FP32", "data": ROWS.tolist()}]},
        )
        np.testing.assert_allclose(np.array(r2.json()["outputs"][0]["data"]).reshape(3, 2), want, rtol=1e-6)


def test_versions_infer_bypasses_the_split(router, models):
    want = direct(models["b"])
    with router.client() as c:
        meta = c.get("/v2/models/churn/versions/canary").json()
        version = meta["versions"][0]
        for v in (version, "canary"):
            r = c.post(
                f"/v2/models/churn/versions/{v}/infer",
                json={
                    "inputs": [
                        {"name": "input", "shape": [3, 4], "datatype": "FP32", "data": ROWS.ravel().tolist()}
                    ]
                },
            )
            assert r.status_code == 200, r.text
            assert r.headers["x-variant"] == "canary" and r.headers["x-model-version"] == version
            np.testing.assert_allclose(
                np.array(r.json()["outputs"][0]["data"]).reshape(3, 2), want, rtol=1e-6
            )


@pytest.mark.parametrize(
    "body,records",
    [
        ({"inputs": ROWS.tolist()}, False),
        ({"inputs": {"input": ROWS.tolist()}}, False),
        ({"instances": ROWS.tolist()}, False),
        ({"dataframe_split": {"columns": ["a", "b", "c", "d"], "data": ROWS.tolist()}}, True),
        ({"dataframe_records": [dict(zip("abcd", row, strict=True)) for row in ROWS.tolist()]}, True),
    ],
    ids=["inputs", "inputs-by-name", "instances", "dataframe_split", "dataframe_records"],
)
def test_mlflow_protocol_answers_what_onnxruntime_answers(router, models, body, records):
    want = direct(models["a"])
    with router.client() as c:
        for path in ("/invocations", "/models/churn/invocations"):
            r = c.post(path, json=body)
            assert r.status_code == 200, r.text
            preds = r.json()["predictions"]
            got = [p["probabilities"] for p in preds] if records else preds["probabilities"]
            np.testing.assert_allclose(np.array(got), want, rtol=1e-6)


def test_metadata_health_metrics_and_openapi(router):
    with router.client() as c:
        assert c.get("/v2/health/live").json() == {"live": True}
        ready = c.get("/v2/health/ready")
        # the routes file seeded the store: generation 1, and the store is reachable
        assert ready.json() == {"ready": True, "generation": 1, "stale": False}
        assert ready.headers["x-routes-generation"] == "1"
        assert c.get("/v2/models/churn/ready").status_code == 200
        meta = c.get("/v2/models/churn").json()
        assert meta["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 4]}]
        assert meta["outputs"] == [{"name": "probabilities", "datatype": "FP32", "shape": [-1, 2]}]
        c.post("/invocations", json={"inputs": ROWS.tolist()})
        m = c.get("/metrics")
        assert m.headers["content-type"].startswith("text/plain")
        assert 'router_requests_total{model="churn",variant="champion"' in m.text
        assert 'router_variant_weight_bp{model="churn",variant="canary"} 0' in m.text
        spec = c.get("/openapi.json").json()
        for p in ("/v2/models/{name}/infer", "/invocations", "/admin/models/{name}/routes", "/metrics"):
            assert p in spec["paths"]


BAD = [
    ("/invocations", b'{"inputs": [[1, 2', 400, "not valid JSON"),
    ("/invocations", b"", 400, "empty"),
    ("/invocations", b'{"inputs": [[1, 2, 3]]}', 400, "shape"),
    ("/invocations", b'{"inputs": [["a", "b", "c", "d"]]}', 400, "cannot be read as float32"),
    ("/invocations", b'{"inputs": [[1, 2, 3, 1e39]]}', 400, "NaN or infinity"),
    ("/invocations", b'{"inputs": [[1, 2, 3, "NaN"]]}', 400, "NaN or infinity"),
    ("/invocations", b'{"inputs": [[1, 2, 3, 1e999]]}', 400, "not valid JSON"),
    ("/invocations", b'{"inputs": [[1, 2, 3, 4]], "instances": [[1, 2, 3, 4]]}', 400, "exactly one of"),
    ("/invocations", b"[1, 2]", 400, "JSON object"),
    ("/models/nope/invocations", b'{"inputs": [[1, 2, 3, 4]]}', 404, "'nope' is not served"),
    (
        "/v2/models/churn/versions/999/infer",
        b'{"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]}',
        404,
        "'999'",
    ),
    (
        "/v2/models/churn/infer",
        b'{"inputs": [{"name": "input", "shape": [1, 4], "datatype": "INT64", "data": [1, 2, 3, 4]}]}',
        400,
        "datatype FP32",
    ),
    (
        "/v2/models/churn/infer",
        b'{"inputs": [{"name": "input", "shape": [2, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]}',
        400,
        "do not fill shape",
    ),
    (
        "/v2/models/churn/infer",
        b'{"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]}',
        400,
        "no input 'x'",
    ),
    ("/v2/models/churn/infer", b'{"inputs": []}', 400, "non-empty 'inputs'"),
]


@pytest.mark.parametrize("path,body,status,needle", BAD, ids=[b[3] for b in BAD])
def test_bad_input_gets_a_4xx_json_error_naming_the_problem(router, path, body, status, needle):
    with router.client() as c:
        r = c.post(path, content=body, headers={"content-type": "application/json"})
        assert r.status_code == status, r.text
        assert needle in r.json()["error"]


def test_body_over_the_limit_gets_413(router_factory, models):
    r = router_factory(two_variants(models["a"], models["b"]), extra_env={"ROUTER_MAX_BODY_BYTES": "2048"})
    with r.client() as c:
        big = b'{"inputs": [' + b",".join([b"[0.5, 0.5, 0.5, 0.5]"] * 200) + b"]}"
        resp = c.post("/invocations", content=iter([big[:1000], big[1000:]]))  # chunked, no length
        assert resp.status_code == 413
        resp = c.post("/invocations", json={"inputs": [[0.5, 0.5, 0.5, 0.5]] * 200})
        assert resp.status_code == 413 and "exceeds the limit" in resp.json()["error"]
        assert c.post("/invocations", json={"inputs": [[0.5, 0.5, 0.5, 0.5]]}).status_code == 200


@pytest.mark.parametrize(
    "method,path",
    [
        ("GET", "/admin/routes"),
        ("GET", "/admin/models/churn/routes"),
        ("PUT", "/admin/models/churn/routes"),
        ("POST", "/admin/reload"),
        ("GET", "/admin/stats"),
        ("GET", "/admin/guard/events"),
        ("GET", "/admin/changes"),
        ("DELETE", "/admin/models/churn/routes"),
    ],
)
def test_admin_endpoints_refuse_missing_and_wrong_tokens(router, method, path):
    with router.client() as c:
        assert c.request(method, path).status_code == 401
        assert c.request(method, path, headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert c.request(method, path, headers={"Authorization": f"Basic {ADMIN_TOKEN}"}).status_code == 401
        # a known key without the role: 403
        bad = PIN_TOKEN if method == "GET" else READ_TOKEN
        assert c.request(method, path, headers={"Authorization": f"Bearer {bad}"}).status_code == 403
    with router.admin(READ_TOKEN) as a:
        if method == "GET":
            assert a.get(path).status_code == 200
    with router.admin() as a:  # nothing was accepted above
        assert all(ch["actor"] != "reader" for ch in a.get("/admin/changes").json()["changes"])
        assert a.get("/admin/models/churn/routes").json()["routes"]["variants"][1]["weight_bp"] == 0


def test_x_variant_pins_only_with_a_key_that_allows_it(router):
    body = {"inputs": ROWS.tolist()}
    with router.client() as c:
        assert c.post("/invocations", json=body, headers={"X-Variant": "canary"}).status_code == 403
        r = c.post(
            "/invocations", json=body, headers={"X-Variant": "canary", "Authorization": f"Bearer {PIN_TOKEN}"}
        )
        assert r.status_code == 200 and r.headers["x-variant"] == "canary"
        r = c.post(
            "/invocations", json=body, headers={"X-Variant": "nope", "Authorization": f"Bearer {PIN_TOKEN}"}
        )
        assert r.status_code == 404
