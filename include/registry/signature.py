"""Validate an ONNX file and read its typed input/output signature."""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from include.registry.errors import InvalidModel

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TensorSpec:
    """One named input or output tensor: element type and shape (``None`` for a dynamic axis)."""

    name: str
    dtype: str
    shape: tuple[int | None, ...]


@dataclass(frozen=True)
class Signature:
    """The typed inputs and outputs of a model."""

    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]

    def to_json(self) -> str:
        """Return a canonical JSON form (stable across runs, used for semver comparison)."""
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> Signature:
        """Parse the form written by :meth:`to_json`."""
        data = json.loads(text)
        return cls(
            inputs=tuple(TensorSpec(d["name"], d["dtype"], tuple(d["shape"])) for d in data["inputs"]),
            outputs=tuple(TensorSpec(d["name"], d["dtype"], tuple(d["shape"])) for d in data["outputs"]),
        )


def _tensor_spec(value_info: Any) -> TensorSpec:
    import onnx

    t = value_info.type
    if t.WhichOneof("value") != "tensor_type":
        kind = t.WhichOneof("value") or "untyped"
        raise InvalidModel(
            f"{value_info.name!r} is a {kind}, not a tensor; export the model with tensor outputs "
            "(for skl2onnx classifiers: options={'zipmap': False})"
        )
    elem = t.tensor_type.elem_type
    if elem == 0:
        raise InvalidModel(f"{value_info.name!r} has no element type")
    dtype = onnx.helper.tensor_dtype_to_np_dtype(elem).name
    shape: list[int | None] = []
    if t.tensor_type.HasField("shape"):
        for d in t.tensor_type.shape.dim:
            shape.append(d.dim_value if d.HasField("dim_value") else None)
    return TensorSpec(value_info.name, dtype, tuple(shape))


def validate_onnx(path: Path, max_bytes: int) -> Signature:
    """Check that ``path`` is a valid ONNX model that loads in onnxruntime, and return its signature.

    Args:
        path: the ``.onnx`` file.
        max_bytes: size limit.

    Returns:
        The typed signature.

    Raises:
        InvalidModel: the file is not ONNX, fails the checker, does not load, or is untyped.
    """
    import onnx
    import onnxruntime as ort

    size = path.stat().st_size
    if size > max_bytes:
        from include.registry.errors import ArtifactTooLarge

        raise ArtifactTooLarge(f"{path.name} is {size} bytes, over the limit of {max_bytes}")
    if size == 0:
        raise InvalidModel(f"{path.name} is empty")
    try:
        model = onnx.load(str(path))
        onnx.checker.check_model(model)
    except Exception as e:  # onnx raises DecodeError, ValidationError, RuntimeError...
        raise InvalidModel(f"{path.name} is not a valid ONNX model: {str(e).splitlines()[0][:300]}") from e
    graph_inputs = {i.name for i in model.graph.initializer}
    inputs = tuple(_tensor_spec(i) for i in model.graph.input if i.name not in graph_inputs)
    outputs = tuple(_tensor_spec(o) for o in model.graph.output)
    if not inputs or not outputs:
        raise InvalidModel(f"{path.name} has no inputs or no outputs")
    try:
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own Fail/InvalidGraph types
        raise InvalidModel(f"{path.name} does not load in onnxruntime: {str(e)[:300]}") from e
    loaded = {i.name for i in sess.get_inputs()}
    if loaded != {i.name for i in inputs}:
        raise InvalidModel(
            f"{path.name}: onnxruntime sees inputs {sorted(loaded)}, the graph declares others"
        )
    return Signature(inputs=inputs, outputs=outputs)
