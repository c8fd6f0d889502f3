"""OIP v2 gRPC messages to feeds and outputs to messages (``raw_*_contents`` and typed contents)."""

from __future__ import annotations

import math
import sys
from typing import Any

import numpy as np

from router._proto import grpc_predict_v2_pb2 as pb
from router.codecs import _input_spec, _reshape
from router.errors import BadRequest, NotFound
from router.model import OnnxModel

# OIP datatype -> the field of ``InferTensorContents`` that carries it (FP16 only travels raw).
CONTENTS_FIELD = {
    "BOOL": "bool_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
}


def _shape(name: str, dims: Any) -> list[int]:
    shape = list(dims)
    if not shape or min(shape) < 0 or max(shape) >= 2**31:
        raise BadRequest(f"input {name!r}: 'shape' must be a non-empty list of non-negative integers")
    return shape


_LE: dict[Any, np.dtype] = {}


def _from_raw(name: str, buf: bytes, dtype: Any, shape: list[int]) -> np.ndarray:
    dt = _LE.get(dtype)
    if dt is None:
        dt = _LE[dtype] = np.dtype(dtype).newbyteorder("<")
    want = math.prod(shape) * dt.itemsize
    if len(buf) != want:
        raise BadRequest(
            f"input {name!r}: raw contents hold {len(buf)} bytes; shape {shape} of "
            f"{np.dtype(dtype).name} needs {want}"
        )
    return np.frombuffer(buf, dtype=dt).reshape(shape)


def _from_contents(name: str, datatype: str, contents: Any, dtype: Any, shape: list[int]) -> np.ndarray:
    field = CONTENTS_FIELD.get(datatype)
    if field is None:
        raise BadRequest(f"input {name!r}: {datatype} data must be sent as raw_input_contents")
    values = getattr(contents, field)
    try:
        arr = np.array(values, dtype=dtype)
    except (ValueError, OverflowError) as e:
        raise BadRequest(f"input {name!r}: contents cannot be read as {np.dtype(dtype).name}: {e}") from e
    return _reshape(name, arr, shape)


def grpc_feeds(req: Any, model: OnnxModel, allow_non_finite: bool) -> tuple[dict[str, np.ndarray], bool]:
    """Translate a ``ModelInferRequest`` into checked feeds (a ``DataPlane.score`` parser).

    Args:
        req: the request message.
        model: the chosen model.
        allow_non_finite: accept NaN and infinity.

    Returns:
        The feeds, and False (answers are tensors, never records).

    Raises:
        BadRequest: the request does not follow the protocol or does not fit the model.
    """
    inputs = req.inputs
    if not inputs:
        raise BadRequest("ModelInferRequest has no inputs")
    raw = req.raw_input_contents
    if raw and len(raw) != len(inputs):
        raise BadRequest(
            f"raw_input_contents has {len(raw)} buffers for {len(inputs)} inputs; send one per input"
        )
    feeds: dict[str, np.ndarray] = {}
    for i, t in enumerate(inputs):
        spec = _input_spec(model, t.name)
        name = spec.name
        if name in feeds:
            raise BadRequest(f"input {name!r} is given twice")
        if t.datatype != spec.datatype:
            raise BadRequest(f"input {name!r} must have datatype {spec.datatype}, got {t.datatype!r}")
        shape = _shape(name, t.shape)
        if raw:
            arr = _from_raw(name, raw[i], spec.dtype, shape)
        else:
            arr = _from_contents(name, t.datatype, t.contents, spec.dtype, shape)
        feeds[name] = model.check(name, arr, spec, allow_non_finite)
    missing = [n for n in model.input_names if n not in feeds]
    if missing:
        raise BadRequest(f"missing inputs {missing}")
    return feeds, False


def _varint(n: int) -> bytes:
    """A protobuf base-128 varint (non-negative ``n``)."""
    if n < 0x80:
        return _BYTE[n]
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


_BYTE = [bytes([i]) for i in range(256)]
_LITTLE = ("<", "|", "=") if sys.byteorder == "little" else ("<", "|")
"""Byte orders whose ``tobytes()`` is already little-endian, as the protocol's raw contents are."""


def _field(tag: bytes, value: bytes) -> bytes:
    """One length-delimited field (string, bytes or message) of the protobuf wire format."""
    return tag + _varint(len(value)) + value if value else b""


_TENSORS: dict[tuple[str, str, tuple[int, ...]], bytes] = {}
_HEADS: dict[tuple[str, str], bytes] = {}  # fields 1 and 2 (model name, version) by (name, version)


def _tensor_field(name: str, datatype: str, shape: tuple[int, ...]) -> bytes:
    """Field 5 of ``ModelInferResponse`` (one ``InferOutputTensor``), serialised by protobuf once per
    (name, datatype, shape) and reused: outputs repeat the same few shapes."""
    key = (name, datatype, shape)
    block = _TENSORS.get(key)
    if block is None:
        if len(_TENSORS) > 4096:
            _TENSORS.clear()
        tensor = pb.ModelInferResponse.InferOutputTensor(name=name, datatype=datatype, shape=shape)
        block = _TENSORS[key] = b"\x2a" + _varint(tensor.ByteSize()) + tensor.SerializeToString()
    return block


def infer_response(
    model_name: str, version: str, request_id: str, model: OnnxModel, outputs: list[np.ndarray], wanted: Any
) -> bytes:
    """Serialise a ``ModelInferResponse`` with every (or every requested) output in ``raw_output_contents``.

    The message is written field by field in field-number order, the bytes protobuf's own
    ``SerializeToString`` gives for the same message (``tests/serving/test_grpc_codec.py`` compares them):
    building the message object, two repeated fields and their kwargs cost more than the rest of the
    gRPC answer (``docs/benchmarks.md``, protocols). The output descriptors come from protobuf itself.

    Args:
        model_name: the model name.
        version: the served version.
        request_id: the request id.
        model: the model (output names and datatypes).
        outputs: the outputs, in the model's order.
        wanted: the request's ``outputs`` (empty: all).

    Returns:
        The serialised response message.

    Raises:
        NotFound: a requested output does not exist.
    """
    pairs = list(zip(model.outputs, outputs, strict=True))
    if wanted:
        by_name = {spec.name: (spec, out) for spec, out in pairs}
        try:
            pairs = [by_name[w.name] for w in wanted]
        except KeyError as e:
            raise NotFound(f"model has no output {e.args[0]!r}; outputs are {model.output_names}") from e
    head = _HEADS.get((model_name, version))
    if head is None:
        if len(_HEADS) > 4096:
            _HEADS.clear()
        head = _HEADS[(model_name, version)] = _field(b"\x0a", model_name.encode()) + _field(
            b"\x12", version.encode()
        )
    parts = [head, _field(b"\x1a", request_id.encode("utf-8"))]
    parts += [_tensor_field(spec.name, spec.datatype, out.shape) for spec, out in pairs]
    for _, out in pairs:
        raw = (
            out.tobytes()
            if out.dtype.byteorder in _LITTLE
            else out.astype(out.dtype.newbyteorder("<")).tobytes()
        )
        parts.append(b"\x32" + _varint(len(raw)) + raw)
    return b"".join(parts)


def model_metadata(doc: dict[str, Any]) -> Any:
    """Build a ``ModelMetadataResponse`` from the REST metadata document.

    Args:
        doc: ``OnnxModel.metadata`` output.

    Returns:
        The response message.
    """
    resp = pb.ModelMetadataResponse(name=doc["name"], versions=doc["versions"], platform=doc["platform"])
    for key in ("inputs", "outputs"):
        for t in doc[key]:
            getattr(resp, key).add(name=t["name"], datatype=t["datatype"], shape=t["shape"])
    return resp
