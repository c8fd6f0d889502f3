"""Deliberately broken models for negative tests of registration, regression and canary gates.

Every builder writes a file atomically and returns its path. The ONNX ones are built by hand
with ``onnx.helper`` (no training), share the demo models' output names (``label`` int64
``[N]``, ``probabilities`` float32 ``[N, 2]``) and input name (``input``), and pass
``onnx.checker``; what is wrong with them is described per builder.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from include.synthetic.files import atomic_write_bytes
from modelgate_dev.demo.errors import DemoError

log = logging.getLogger(__name__)

BadModelKind = Literal["wrong_signature", "nan_output", "not_onnx", "truncated"]
BAD_MODEL_KINDS: tuple[BadModelKind, ...] = ("wrong_signature", "nan_output", "not_onnx", "truncated")
"""Kinds accepted by :func:`make_bad_model`."""

OPSET = 17
"""Default-domain opset of the hand-built models (the demo models use the same)."""

IR_VERSION = 8
"""ONNX IR version matching :data:`OPSET`, readable by older onnxruntime builds too."""


def build_linear_model(
    n_features: int = 30,
    *,
    seed: int = 0,
    log_of_feature: int | None = None,
    graph_name: str = "linear_classifier",
) -> onnx.ModelProto:
    """Build a binary logistic classifier graph with the demo signature.

    ``p = sigmoid(input @ w + b [+ log(input[:, log_of_feature])])``;
    ``probabilities = [1 - p, p]``; ``label = argmax(probabilities)``.

    Args:
        n_features: width of the ``input`` tensor (float32 ``[N, n_features]``).
        seed: seed of the random weights.
        log_of_feature: when set, the logit adds ``log`` of that input column, so rows where the
            column is negative get NaN probabilities (and zero gives a probability of exactly 0).
        graph_name: name of the ONNX graph.

    Returns:
        The checked ONNX model.

    Raises:
        DemoError: when ``n_features`` < 1 or ``log_of_feature`` is out of range.
    """
    if n_features < 1:
        raise DemoError(f"n_features must be at least 1, got {n_features}")
    if log_of_feature is not None and not 0 <= log_of_feature < n_features:
        raise DemoError(f"log_of_feature must be a column index below {n_features}, got {log_of_feature}")
    rng = np.random.default_rng(seed)
    weights = (rng.normal(size=(n_features, 1)) / np.sqrt(n_features)).astype(np.float32)
    initializers = [
        numpy_helper.from_array(weights, "W"),
        numpy_helper.from_array(np.array([0.1], dtype=np.float32), "B"),
        numpy_helper.from_array(np.array([1.0], dtype=np.float32), "ONE"),
    ]
    nodes = [
        helper.make_node("MatMul", ["input", "W"], ["xw"]),
        helper.make_node("Add", ["xw", "B"], ["linear"]),
    ]
    logit = "linear"
    if log_of_feature is not None:
        initializers += [
            numpy_helper.from_array(np.array([log_of_feature], dtype=np.int64), "COL_START"),
            numpy_helper.from_array(np.array([log_of_feature + 1], dtype=np.int64), "COL_END"),
            numpy_helper.from_array(np.array([1], dtype=np.int64), "COL_AXIS"),
        ]
        nodes += [
            helper.make_node("Slice", ["input", "COL_START", "COL_END", "COL_AXIS"], ["column"]),
            helper.make_node("Log", ["column"], ["log_column"]),
            helper.make_node("Add", ["linear", "log_column"], ["logit"]),
        ]
        logit = "logit"
    nodes += [
        helper.make_node("Sigmoid", [logit], ["p1"]),
        helper.make_node("Sub", ["ONE", "p1"], ["p0"]),
        helper.make_node("Concat", ["p0", "p1"], ["probabilities"], axis=1),
        helper.make_node("ArgMax", ["probabilities"], ["label"], axis=1, keepdims=0),
    ]
    graph = helper.make_graph(
        nodes,
        graph_name,
        inputs=[helper.make_tensor_value_info("input", TensorProto.FLOAT, [None, n_features])],
        outputs=[
            helper.make_tensor_value_info("label", TensorProto.INT64, [None]),
            helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, 2]),
        ],
        initializer=initializers,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        ir_version=IR_VERSION,
        producer_name="modelgate.demo",
    )
    onnx.checker.check_model(model, full_check=True)
    return model


def make_wrong_signature_model(path: Path | str, n_features: int = 29, seed: int = 0) -> Path:
    """Write a valid classifier whose input has ``n_features`` columns instead of the demo's 30.

    Args:
        path: the ``.onnx`` file to write.
        n_features: input width (anything but 30 makes the signature differ).
        seed: seed of the weights.

    Returns:
        The path written.

    Raises:
        DemoError: when ``n_features`` < 1.
        OSError: when the file cannot be written.
    """
    model = build_linear_model(n_features, seed=seed, graph_name="wrong_signature")
    return _write(path, model.SerializeToString(), f"wrong-signature model ({n_features} features)")


def make_nan_output_model(
    path: Path | str, n_features: int = 30, nan_feature: int = 0, seed: int = 0
) -> Path:
    """Write a classifier with the demo signature that outputs NaN where a feature is negative.

    The logit adds ``log(input[:, nan_feature])``: rows with that feature < 0 get NaN
    probabilities, rows with it > 0 get finite ones.

    Args:
        path: the ``.onnx`` file to write.
        n_features: input width (30 matches the demo signature).
        nan_feature: index of the column whose logarithm is taken.
        seed: seed of the weights.

    Returns:
        The path written.

    Raises:
        DemoError: when ``nan_feature`` is not a column index.
        OSError: when the file cannot be written.
    """
    model = build_linear_model(n_features, seed=seed, log_of_feature=nan_feature, graph_name="nan_output")
    return _write(path, model.SerializeToString(), f"NaN-output model (log of column {nan_feature})")


def make_not_onnx_file(path: Path | str) -> Path:
    """Write a file with an ``.onnx`` name that is not ONNX at all (plain text).

    Args:
        path: the file to write.

    Returns:
        The path written.

    Raises:
        OSError: when the file cannot be written.
    """
    return _write(path, b"this is not an ONNX model\n", "non-ONNX file")


def make_truncated_model(path: Path | str, n_features: int = 30) -> Path:
    """Write the first half of a valid model's bytes: a corrupt ONNX file.

    Args:
        path: the file to write.
        n_features: input width of the model before truncation.

    Returns:
        The path written.

    Raises:
        OSError: when the file cannot be written.
    """
    data = build_linear_model(n_features, graph_name="truncated").SerializeToString()
    return _write(path, data[: len(data) // 2], "truncated ONNX file")


def make_bad_model(path: Path | str, kind: BadModelKind = "wrong_signature") -> Path:
    """Write one of the broken models by kind.

    Args:
        path: the file to write.
        kind: ``"wrong_signature"`` (29 input features), ``"nan_output"`` (NaN where ``f00`` < 0),
            ``"not_onnx"`` (plain text) or ``"truncated"`` (corrupt protobuf).

    Returns:
        The path written.

    Raises:
        DemoError: for an unknown ``kind``.
        OSError: when the file cannot be written.
    """
    if kind == "wrong_signature":
        return make_wrong_signature_model(path)
    if kind == "nan_output":
        return make_nan_output_model(path)
    if kind == "not_onnx":
        return make_not_onnx_file(path)
    if kind == "truncated":
        return make_truncated_model(path)
    raise DemoError(f"unknown bad-model kind {kind!r}; choose one of {', '.join(BAD_MODEL_KINDS)}")


def _write(path: Path | str, data: bytes, what: str) -> Path:
    target = atomic_write_bytes(path, data)
    log.info("wrote %s to %s", what, target)
    return target
