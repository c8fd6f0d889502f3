"""Models that look fine offline but misbehave under live traffic, for canary tests and the demo.

All share the demo signature (``input`` float32 ``[N, n_features]`` → ``label`` int64 ``[N]``,
``probabilities`` float32 ``[N, 2]``), pass ``onnx.checker`` and the router's zero-input warm-up.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from include.demo.models import build_linear_model
from include.synthetic.files import atomic_write_bytes


def make_shifted_model(
    path: Path | str, n_features: int = 30, seed: int = 0, shift: float = 0.0, graph_name: str | None = None
) -> Path:
    """Write the demo linear classifier with ``shift`` added to its logit (moves the score distribution).

    ``shift=0`` with another ``graph_name`` gives a model that predicts exactly like the original but
    has other bytes (a new registry version that behaves the same).

    Args:
        path: where to write the model.
        n_features: input width.
        seed: seed of the weights (the same seed as the champion keeps the same weights).
        shift: added to the bias.
        graph_name: name of the graph (default from the shift); another name gives other bytes.

    Returns:
        The path.
    """
    model = build_linear_model(n_features, seed=seed, graph_name=graph_name or f"shifted_{shift:+.3f}")
    for init in model.graph.initializer:
        if init.name == "B":
            init.CopyFrom(numpy_helper.from_array(np.array([0.1 + shift], dtype=np.float32), "B"))
    onnx.checker.check_model(model, full_check=True)
    return atomic_write_bytes(path, model.SerializeToString())


def make_erroring_model(
    path: Path | str, n_features: int = 30, seed: int = 0, threshold: float = 0.0
) -> Path:
    """Write a classifier that fails at run time on any batch with a row where ``input[:, 0] > threshold``.

    It gathers from a one-element table at index ``1000 * any(input[:, 0] > threshold)``: index 0
    (fine) for the warm-up's zeros, out of bounds (onnxruntime error, HTTP 500) otherwise. With
    ``threshold=0`` about half of centred inputs fail.

    Args:
        path: where to write the model.
        n_features: input width.
        seed: seed of the weights.
        threshold: rows above it in feature 0 fail.

    Returns:
        The path.
    """
    model = build_linear_model(n_features, seed=seed, graph_name="erroring")
    g = model.graph
    g.initializer.extend(
        [
            numpy_helper.from_array(np.array([0], dtype=np.int64), "E_START"),
            numpy_helper.from_array(np.array([1], dtype=np.int64), "E_END"),
            numpy_helper.from_array(np.array([1], dtype=np.int64), "E_AXIS"),
            numpy_helper.from_array(np.array(threshold, dtype=np.float32), "E_T"),
            numpy_helper.from_array(np.array(1000, dtype=np.int64), "E_K"),
            numpy_helper.from_array(np.array([0.0], dtype=np.float32), "E_TABLE"),
        ]
    )
    # linear = xw + B  ->  linear2 = linear + TABLE[1000 * max(col0 > t)]
    extra = [
        helper.make_node("Slice", ["input", "E_START", "E_END", "E_AXIS"], ["e_col"]),
        helper.make_node("Greater", ["e_col", "E_T"], ["e_gt"]),
        helper.make_node("Cast", ["e_gt"], ["e_gt_i"], to=TensorProto.INT64),
        helper.make_node("ReduceMax", ["e_gt_i"], ["e_any"], keepdims=0),
        helper.make_node("Mul", ["e_any", "E_K"], ["e_idx"]),
        helper.make_node("Gather", ["E_TABLE", "e_idx"], ["e_off"]),
        helper.make_node("Add", ["linear", "e_off"], ["linear_e"]),
    ]
    nodes = list(g.node)
    at = next(i for i, n in enumerate(nodes) if n.op_type == "Add" and "linear" in n.output) + 1
    for n in nodes[at:]:
        n.input[:] = ["linear_e" if x == "linear" else x for x in n.input]
    del g.node[:]
    g.node.extend(nodes[:at] + extra + nodes[at:])
    onnx.checker.check_model(model, full_check=True)
    return atomic_write_bytes(path, model.SerializeToString())
