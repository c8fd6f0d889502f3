"""Hostile input (issue 13): shapes that overflow or do not match, extreme finite FP64, column names.

In-process against ``create_app``: these exercise parsing only. Expected values come from onnxruntime
run directly on the same rows.
"""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from support import make_logreg_onnx

FEATURES = ["age", "tenure", "spend", "visits"]
ROWS = np.array([[0.5, -1.0, 2.0, 0.25], [1.5, 0.0, -0.5, 3.0]], dtype=np.float32)


def make_fp64_onnx(path):
    """A float64 model: y = sum(x) * 0 + x[:, :1] (passes the value through, so 1e308 stays finite)."""
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["input"], ["out"])],
        "fp64",
        [helper.make_tensor_value_info("input", TensorProto.DOUBLE, [None, 2])],
        [helper.make_tensor_value_info("out", TensorProto.DOUBLE, [None, 2])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def with_feature_names(path, names):
    m = onnx.load(str(path))
    m.metadata_props.add(key="feature_names", value=",".join(names))
    onnx.save(m, str(path))
    return path


def routes(uri, name="churn"):
    return {"models": {name: {"variants": [{"name": "champion", "uri": str(uri), "weight_bp": 10000}]}}}


@pytest.fixture
def named(inproc_factory, tmp_path):
    path = with_feature_names(make_logreg_onnx(tmp_path / "named.onnx", seed=4), FEATURES)
    return inproc_factory(routes(path), name="named"), path


@pytest.fixture
def unnamed(inproc_factory, tmp_path):
    return inproc_factory(routes(make_logreg_onnx(tmp_path / "plain.onnx", seed=4)), name="plain")


def oip(shape, data, datatype="FP32"):
    return {"inputs": [{"name": "input", "shape": shape, "datatype": datatype, "data": data}]}


@pytest.mark.parametrize(
    "shape,data",
    [
        ([2**30, 2**30, 16], []),  # 2**64 elements: 0 in int64 arithmetic, used to reach reshape (500)
        ([2**31 - 1, 2**31 - 1, 2**31 - 1, 2**31 - 1], []),
        ([2**30, 2**30, 16], [1.0, 2.0, 3.0, 4.0]),
        ([2**32 // 4, 4], [1.0, 2.0, 3.0, 4.0]),
        ([3, 4], [1.0, 2.0, 3.0, 4.0]),
    ],
    ids=["2^64-empty", "huge-4d-empty", "2^64-four-values", "2^32-rows", "too-few"],
)
def test_shapes_whose_element_count_overflows_or_differs_get_400_naming_the_shape(unnamed, shape, data):
    with unnamed.client() as c:
        r = c.post("/v2/models/churn/infer", json=oip(shape, data))
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert "shape" in err and "input 'input'" in err, err


def test_overflowing_shape_gets_400_over_the_wire_too(router_factory, tmp_path):
    r = router_factory(routes(make_logreg_onnx(tmp_path / "w.onnx", seed=4)))
    with r.client() as c:
        resp = c.post("/v2/models/churn/infer", json=oip([2**30, 2**30, 16], []))
        assert resp.status_code == 400 and "do not fill shape" in resp.json()["error"]


def test_finite_fp64_extremes_are_accepted_and_passed_through(inproc_factory, tmp_path):
    router = inproc_factory(routes(make_fp64_onnx(tmp_path / "fp64.onnx")))
    big = np.finfo(np.float64).max  # 1.7976931348623157e308
    rows = [[1e308, 1e308], [big, -big], [5e-324, -1e-300]]  # their float64 sum overflows to inf
    with router.client() as c:
        r = c.post("/v2/models/churn/infer", json=oip([3, 2], rows, "FP64"))
        assert r.status_code == 200, r.text
        assert r.json()["outputs"][0]["data"] == [v for row in rows for v in row]
        r = c.post("/invocations", json={"inputs": rows})
        assert r.status_code == 200 and r.json()["predictions"]["out"] == rows
        # non-finite values are still refused
        for bad in (b'{"inputs": [[1e308, "Infinity"]]}', b'{"inputs": [[1.0, "NaN"]]}'):
            r = c.post("/invocations", content=bad, headers={"content-type": "application/json"})
            assert r.status_code == 400 and "NaN or infinity" in r.json()["error"]


def test_column_named_rows_are_checked_against_the_models_feature_names(named):
    router, path = named
    want = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"input": ROWS})[0]
    with router.client() as c:
        ok = c.post("/invocations", json={"dataframe_split": {"columns": FEATURES, "data": ROWS.tolist()}})
        assert ok.status_code == 200, ok.text
        np.testing.assert_allclose([p["probabilities"] for p in ok.json()["predictions"]], want, rtol=1e-6)
        # the same rows with their columns in another order, by name: the same answer
        order = [2, 0, 3, 1]
        shuffled = {"columns": [FEATURES[i] for i in order], "data": ROWS[:, order].tolist()}
        r = c.post("/invocations", json={"dataframe_split": shuffled})
        assert r.status_code == 200, r.text
        np.testing.assert_allclose([p["probabilities"] for p in r.json()["predictions"]], want, rtol=1e-6)
        records = [
            dict(zip([FEATURES[i] for i in order], row, strict=True)) for row in ROWS[:, order].tolist()
        ]
        r = c.post("/invocations", json={"dataframe_records": records})
        np.testing.assert_allclose([p["probabilities"] for p in r.json()["predictions"]], want, rtol=1e-6)
        # wrong names are refused, naming what is missing and what is unknown
        wrong = {"columns": ["a", "b", "c", "d"], "data": ROWS.tolist()}
        r = c.post("/invocations", json={"dataframe_split": wrong})
        assert r.status_code == 400
        assert "missing ['age', 'tenure', 'spend', 'visits']" in r.json()["error"]
        assert "unknown ['a', 'b', 'c', 'd']" in r.json()["error"]
        r = c.post("/invocations", json={"dataframe_records": [{"age": 1, "tenure": 2, "spend": 3, "x": 4}]})
        assert r.status_code == 400 and "missing ['visits'], unknown ['x']" in r.json()["error"]
        dup = {"columns": ["age", "age", "spend", "visits"], "data": ROWS.tolist()}
        r = c.post("/invocations", json={"dataframe_split": dup})
        assert r.status_code == 400 and "distinct" in r.json()["error"]


def test_without_feature_names_the_column_count_must_match_the_input_width(unnamed):
    with unnamed.client() as c:
        r = c.post("/invocations", json={"dataframe_split": {"columns": list("abcd"), "data": ROWS.tolist()}})
        assert r.status_code == 200, r.text
        r = c.post("/invocations", json={"dataframe_split": {"columns": list("abc"), "data": ROWS.tolist()}})
        assert r.status_code == 400 and "3 columns" in r.json()["error"] and "takes 4" in r.json()["error"]
