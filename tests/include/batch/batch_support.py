"""Helpers of the batch tests: tiny classifiers shaped like the demo model, Parquet partitions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq


def make_classifier_onnx(path: Path, n_features: int = 4, seed: int = 0) -> Path:
    """Write a logistic regression like the demo model: ``input`` float[N, F] -> ``label`` int64[N], ``probabilities`` float[N, 2]."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    w = rng.normal(size=(n_features, 1)).astype(np.float32)
    nodes = [
        helper.make_node("MatMul", ["input", "W"], ["z0"]),
        helper.make_node("Add", ["z0", "B"], ["z"]),
        helper.make_node("Sigmoid", ["z"], ["p1"]),
        helper.make_node("Sub", ["one", "p1"], ["p0"]),
        helper.make_node("Concat", ["p0", "p1"], ["probabilities"], axis=1),
        helper.make_node("ArgMax", ["probabilities"], ["label"], axis=1, keepdims=0),
    ]
    graph = helper.make_graph(
        nodes,
        "classifier",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [None, n_features])],
        [
            helper.make_tensor_value_info("label", TensorProto.INT64, [None]),
            helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, 2]),
        ],
        initializer=[
            numpy_helper.from_array(w, "W"),
            numpy_helper.from_array(np.array([0.1], dtype=np.float32), "B"),
            numpy_helper.from_array(np.array([1.0], dtype=np.float32), "one"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def write_partition(
    path: Path, rows: int, n_features: int = 4, seed: int = 0, row_group_size: int | None = None
) -> Path:
    """Write a Parquet partition: ``customer_id`` (string key), ``f00..`` float32 features, ``region`` key."""
    rng = np.random.default_rng(seed)
    cols: dict[str, pa.Array] = {"customer_id": pa.array([f"c{seed}-{i}" for i in range(rows)])}
    for j in range(n_features):
        cols[f"f{j:02d}"] = pa.array(rng.normal(size=rows).astype(np.float32))
    cols["region"] = pa.array(rng.integers(0, 3, size=rows).astype(np.int64).astype(str))
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(cols), path, row_group_size=row_group_size)
    return path
