"""One loaded ONNX model: an onnxruntime session, its signature, warm-up and prediction."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from router.errors import BadRequest, InferenceError, ModelLoadError

log = logging.getLogger(__name__)

# onnxruntime type string -> (numpy dtype, OIP v2 datatype)
_TYPES: dict[str, tuple[Any, str]] = {
    "tensor(float)": (np.float32, "FP32"),
    "tensor(double)": (np.float64, "FP64"),
    "tensor(float16)": (np.float16, "FP16"),
    "tensor(int64)": (np.int64, "INT64"),
    "tensor(int32)": (np.int32, "INT32"),
    "tensor(int16)": (np.int16, "INT16"),
    "tensor(int8)": (np.int8, "INT8"),
    "tensor(uint8)": (np.uint8, "UINT8"),
    "tensor(uint16)": (np.uint16, "UINT16"),
    "tensor(uint32)": (np.uint32, "UINT32"),
    "tensor(uint64)": (np.uint64, "UINT64"),
    "tensor(bool)": (np.bool_, "BOOL"),
}
DATATYPES = {v[1]: v[0] for v in _TYPES.values()}


@dataclass(frozen=True)
class TensorSpec:
    """Name, numpy dtype, OIP datatype and shape (``-1`` for a free dimension) of a tensor."""

    name: str
    dtype: Any
    datatype: str
    shape: tuple[int, ...]

    def metadata(self) -> dict[str, Any]:
        """Return the OIP v2 metadata entry."""
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}


def _spec(arg: Any) -> TensorSpec:
    if arg.type not in _TYPES:
        raise ModelLoadError(f"tensor {arg.name!r} has unsupported type {arg.type}")
    dtype, datatype = _TYPES[arg.type]
    shape = tuple(d if isinstance(d, int) and d >= 0 else -1 for d in (arg.shape or []))
    return TensorSpec(arg.name, dtype, datatype, shape)


def _score_index(outputs: tuple[TensorSpec, ...]) -> int:
    for i, o in enumerate(outputs):
        if o.name == "probabilities":
            return i
    for i, o in enumerate(outputs):
        if np.issubdtype(o.dtype, np.floating):
            return i
    return 0


def _feature_names(session: Any) -> tuple[str, ...] | None:
    """The column names of a single-tensor model, from its ``feature_names`` metadata (comma-separated).

    Registered modelgate models carry it (``modelgate_dev/demo/train.py`` writes it); None when absent.
    """
    try:
        raw = session.get_modelmeta().custom_metadata_map.get("feature_names")
    except Exception:  # metadata is optional; a model without it is still served
        return None
    if not raw:
        return None
    names = tuple(n.strip() for n in str(raw).split(","))
    return names if all(names) and len(set(names)) == len(names) else None


class OnnxModel:
    """A warmed-up onnxruntime session with its signature.

    Args:
        path: the ``.onnx`` file.
        sha256: hex sha256 of the file's bytes (already verified by the caller).
        version: what ``X-Model-Version`` reports (registry version number or sha256 prefix).
        source: the URI it was loaded from.

    Raises:
        ModelLoadError: the file does not load in onnxruntime or fails its warm-up run.
    """

    def __init__(self, path: Path, sha256: str, version: str, source: str) -> None:
        self.path = path
        self.sha256 = sha256
        self.version = version
        self.source = source
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(
                str(path), sess_options=opts, providers=["CPUExecutionProvider"]
            )
        except Exception as e:  # onnxruntime raises several unrelated types for bad files
            raise ModelLoadError(f"{source}: onnxruntime cannot load the model: {e}") from e
        try:
            self.inputs = tuple(_spec(a) for a in self.session.get_inputs())
            self.outputs = tuple(_spec(a) for a in self.session.get_outputs())
        except ModelLoadError as e:
            raise ModelLoadError(f"{source}: {e.message}") from e
        self.input_names = tuple(i.name for i in self.inputs)
        self.feature_names = _feature_names(self.session)
        self.output_names = [o.name for o in self.outputs]
        self.score_index = _score_index(self.outputs)
        self.warm_up()
        # The public ``run`` re-validates the feed names and checks for GPU graph capture and OrtValue
        # ownership in Python on every call; our feeds are already complete numpy arrays checked against
        # the signature, and the session is CPU-only, so call the binding directly when it is there.
        sess = getattr(self.session, "_sess", None)
        self._run = sess.run if sess is not None and hasattr(sess, "run") else self.session.run

    def warm_up(self) -> None:
        """Run the model once on a zero batch of one row so the first request is not slow.

        Raises:
            ModelLoadError: the warm-up run fails.
        """
        feeds = {
            i.name: np.zeros(tuple(1 if d < 0 else d for d in i.shape), dtype=i.dtype) for i in self.inputs
        }
        try:
            for _ in range(3):
                self.session.run(self.output_names, feeds)
        except Exception as e:
            raise ModelLoadError(f"{self.source}: warm-up run failed: {e}") from e

    def check(self, name: str, arr: np.ndarray, spec: TensorSpec, allow_non_finite: bool) -> np.ndarray:
        """Check one input array against its spec.

        Args:
            name: the input name, for messages.
            arr: the array.
            spec: the input's spec.
            allow_non_finite: accept NaN and infinity.

        Returns:
            The array, unchanged.

        Raises:
            BadRequest: rank, a fixed dimension, or finiteness does not fit.
        """
        if arr.ndim != len(spec.shape):
            raise BadRequest(
                f"input {name!r} must have {len(spec.shape)} dimensions {list(spec.shape)}, "
                f"got shape {list(arr.shape)}"
            )
        for got, want in zip(arr.shape, spec.shape, strict=True):
            if want >= 0 and got != want:
                raise BadRequest(f"input {name!r} must have shape {list(spec.shape)}, got {list(arr.shape)}")
        if arr.size == 0:
            raise BadRequest(f"input {name!r} is empty (shape {list(arr.shape)})")
        # The float64 sum of finite float16/32 values is finite, so one reduction checks them all; the sum
        # of finite float64 values can overflow (1e308 + 1e308), so those are checked one by one.
        if not allow_non_finite and arr.dtype.kind == "f":
            if arr.dtype.itemsize < 8:
                finite = math.isfinite(arr.sum(dtype=np.float64))
            else:
                finite = bool(np.isfinite(arr).all())
            if not finite:
                raise BadRequest(f"input {name!r} contains NaN or infinity, which this model does not accept")
        return arr

    def predict(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        """Score checked inputs.

        Args:
            feeds: input name to array, already checked.

        Returns:
            The outputs, in ``output_names`` order.

        Raises:
            InferenceError: onnxruntime fails on the input.
        """
        try:
            return self._run(self.output_names, feeds, None)
        except Exception as e:
            raise InferenceError(f"model {self.source} failed: {e}") from e

    def score(self, outputs: list[np.ndarray]) -> float:
        """Return the prediction summary of a batch: the mean positive-class score (or mean output).

        Args:
            outputs: the outputs of ``predict``.

        Returns:
            A float summary.
        """
        out = outputs[self.score_index]
        if out.ndim == 2 and out.shape[1] == 2:
            n = out.shape[0]
            return float(out[0, 1]) if n == 1 else float(out[:, 1].sum(dtype=np.float64)) / n
        if out.size == 1:
            return float(out.reshape(-1)[0])
        return float(out.sum(dtype=np.float64)) / out.size if out.size else 0.0

    def metadata(self, name: str) -> dict[str, Any]:
        """Return OIP v2 model metadata.

        Args:
            name: the model name in URLs.

        Returns:
            The metadata document.
        """
        return {
            "name": name,
            "versions": [self.version],
            "platform": "onnxruntime_onnx",
            "inputs": [i.metadata() for i in self.inputs],
            "outputs": [o.metadata() for o in self.outputs],
        }
