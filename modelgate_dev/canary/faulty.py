"""Models that look fine offline but misbehave under live traffic, for canary tests and the demo.

All share the demo signature (``input`` float32 ``[N, n_features]`` → ``label`` int64 ``[N]``,
``probabilities`` float32 ``[N, 2]``), pass ``onnx.checker`` and the router's zero-input warm-up.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from include.synthetic.files import atomic_write_bytes
from modelgate_dev.demo.models import build_linear_model


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


def _add_burn(model: onnx.ModelProto, layers: int, width: int, seed: int) -> onnx.ModelProto:
    """Return a copy of ``model`` whose float output gains ``0 * burn(input)`` (same values, more time)."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    g = m.graph
    inp = g.input[0]
    n_features = inp.type.tensor_type.shape.dim[1].dim_value
    out = next(
        (o for o in g.output if o.name == "probabilities"),
        next(o for o in g.output if o.type.tensor_type.elem_type == TensorProto.FLOAT),
    )
    pre = f"{out.name}_before_burn"
    for n in g.node:
        n.output[:] = [pre if x == out.name else x for x in n.output]
        n.input[:] = [pre if x == out.name else x for x in n.input]
    rng = np.random.default_rng(seed + 1)
    g.initializer.extend(
        [
            numpy_helper.from_array(np.array([0], dtype=np.int64), "S_AXES"),
            numpy_helper.from_array(
                (rng.normal(size=(n_features, width)) / np.sqrt(n_features)).astype(np.float32), "S_W0"
            ),
            numpy_helper.from_array(
                (rng.normal(size=(width, width)) / np.sqrt(width)).astype(np.float32), "S_M"
            ),
            numpy_helper.from_array(np.array(0.0, dtype=np.float32), "S_ZERO"),
        ]
    )
    # burn: (sum over rows of input) @ W0, then `layers` times tanh(h @ M); the result times 0 is added
    # to the output, so values are unchanged and the cost is per call, not per row
    nodes = [
        helper.make_node("ReduceSum", [inp.name, "S_AXES"], ["s_sum"], keepdims=1),
        helper.make_node("MatMul", ["s_sum", "S_W0"], ["s_h0"]),
    ]
    prev = "s_h0"
    for k in range(layers):
        nodes += [
            helper.make_node("MatMul", [prev, "S_M"], [f"s_m{k}"]),
            helper.make_node("Tanh", [f"s_m{k}"], [f"s_h{k + 1}"]),
        ]
        prev = f"s_h{k + 1}"
    nodes += [
        helper.make_node("ReduceSum", [prev], ["s_total"], keepdims=0),
        helper.make_node("Mul", ["s_total", "S_ZERO"], ["s_nothing"]),
        helper.make_node("Add", [pre, "s_nothing"], [out.name]),
    ]
    g.node.extend(nodes)
    onnx.checker.check_model(m, full_check=True)
    return m


def _call_ms(model: onnx.ModelProto, n_features: int) -> float:
    import time

    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(
        model.SerializeToString(), sess_options=so, providers=["CPUExecutionProvider"]
    )
    x = np.ones((1, n_features), dtype=np.float32)
    sess.run(None, {model.graph.input[0].name: x})
    times = []
    for _ in range(15):
        t = time.perf_counter()
        sess.run(None, {model.graph.input[0].name: x})
        times.append(time.perf_counter() - t)
    # the fastest call: on a shared machine noise only ever adds time, and a median taken in a slow
    # moment made the calibrated copy 2.4x too fast (1.7 ms for a 4 ms target)
    return float(np.min(times)) * 1000.0


def make_slow_copy(
    src: Path | str, path: Path | str, target_ms: float = 6.0, seed: int = 0, width: int = 256
) -> Path:
    """Write a copy of an ONNX model that predicts the same values but takes about ``target_ms`` more per call.

    The extra work is a chain of ``width x width`` matrix products on one vector, sized by timing a
    probe on this machine (single intra-op thread, as the router runs sessions), so the copy of a
    champion-like model passes an offline budget such as "p99 under 10 ms" and agrees with the
    champion, yet trips a live latency guard set below the added time. The input must be float
    ``[N, F]`` and the opset at least 13 (``ReduceSum`` with an ``axes`` input).

    Args:
        src: the model to copy (e.g. the demo's ``churn-v2.onnx``).
        path: where to write the slow copy.
        target_ms: wanted extra time per call.
        seed: seed of the burn weights.
        width: width of the burn layers.

    Returns:
        The path.
    """
    model = onnx.load(str(src))
    n_features = model.graph.input[0].type.tensor_type.shape.dim[1].dim_value
    base = _call_ms(model, n_features)
    probe_layers = 200  # about 2 ms: long enough that timer and call overhead do not skew the per-layer cost
    probe = _call_ms(_add_burn(model, probe_layers, width, seed), n_features)
    per_layer = max((probe - base) / probe_layers, 1e-4)
    layers = int(min(4000, max(1, round(target_ms / per_layer))))
    return atomic_write_bytes(path, _add_burn(model, layers, width, seed).SerializeToString())


def make_slow_model(
    path: Path | str, target_ms: float = 6.0, n_features: int = 30, seed: int = 0, width: int = 256
) -> Path:
    """Write the demo linear classifier made about ``target_ms`` slower per call (see :func:`make_slow_copy`).

    Args:
        path: where to write the model.
        target_ms: wanted extra time per call.
        n_features: input width.
        seed: seed of the weights (the same seed as :func:`make_shifted_model` predicts the same).
        width: width of the burn layers.

    Returns:
        The path.
    """
    fast = Path(str(path) + ".fast.onnx")
    atomic_write_bytes(fast, build_linear_model(n_features, seed=seed, graph_name="slow").SerializeToString())
    try:
        return make_slow_copy(fast, path, target_ms, seed, width)
    finally:
        fast.unlink(missing_ok=True)
