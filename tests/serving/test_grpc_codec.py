"""``router.grpc_codec.infer_response`` writes the bytes protobuf's own serialiser writes for the message.

The reference is the message built with the generated ``grpc_predict_v2_pb2`` classes and serialised by
protobuf (upb); the router's answer must equal it byte for byte and parse back to the same message.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from router._proto import grpc_predict_v2_pb2 as pb
from router.errors import NotFound
from router.grpc_codec import infer_response
from router.model import TensorSpec


def _reference(name, version, rid, pairs):
    resp = pb.ModelInferResponse(model_name=name, model_version=version, id=rid)
    for spec, out in pairs:
        resp.outputs.add(name=spec.name, datatype=spec.datatype, shape=out.shape)
        resp.raw_output_contents.append(
            np.ascontiguousarray(out, dtype=out.dtype.newbyteorder("<")).tobytes()
        )
    return resp.SerializeToString()


def _model(*specs):
    return SimpleNamespace(outputs=specs, output_names=[s.name for s in specs])


CASES = {
    "label and probabilities": [
        (TensorSpec("label", np.int64, "INT64", (-1,)), np.array([1, 0, 1], dtype=np.int64)),
        (TensorSpec("probabilities", np.float32, "FP32", (-1, 2)), np.full((3, 2), 0.25, dtype=np.float32)),
    ],
    "1,000 floats (two-byte lengths)": [
        (TensorSpec("y", np.float32, "FP32", (-1, 1000)), np.arange(1000, dtype=np.float32).reshape(1, 1000)),
    ],
    "bool, float64, an empty output, a big-endian array": [
        (TensorSpec("b", np.bool_, "BOOL", (-1,)), np.array([True, False])),
        (TensorSpec("d", np.float64, "FP64", (-1,)), np.array([1.5, -2.0])),
        (TensorSpec("e", np.float32, "FP32", (-1,)), np.zeros(0, dtype=np.float32)),
        (TensorSpec("big", np.int32, "INT32", (-1,)), np.array([1, 2**20], dtype=">i4")),
    ],
    "a non-contiguous output": [
        (TensorSpec("t", np.float32, "FP32", (-1, 2)), np.arange(8, dtype=np.float32).reshape(2, 4)[:, ::2]),
    ],
}


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize(
    ("version", "rid"),
    [("3", "req-1"), ("", "r" * 128), ("sha256:" + "ab" * 32, "é-ü")],
    ids=["short", "long-id", "utf8"],
)
def test_the_answer_is_the_bytes_protobuf_serialises(case, version, rid):
    pairs = CASES[case]
    model = _model(*(spec for spec, _ in pairs))
    for _ in range(2):  # the second time from the cached descriptors
        got = infer_response("churn", version, rid, model, [out for _, out in pairs], [])
        assert got == _reference("churn", version, rid, pairs)
    back = pb.ModelInferResponse.FromString(got)
    for (spec, out), t, raw in zip(pairs, back.outputs, back.raw_output_contents, strict=True):
        assert (t.name, t.datatype, tuple(t.shape)) == (spec.name, spec.datatype, out.shape)
        assert np.array_equal(np.frombuffer(raw, dtype=out.dtype.newbyteorder("<")).reshape(out.shape), out)


def test_requested_outputs_come_in_the_requested_order_and_unknown_ones_are_refused():
    pairs = CASES["label and probabilities"]
    model = _model(*(spec for spec, _ in pairs))
    outs = [out for _, out in pairs]
    wanted = [pb.ModelInferRequest.InferRequestedOutputTensor(name="probabilities")]
    got = infer_response("m", "1", "r", model, outs, wanted)
    assert got == _reference("m", "1", "r", [pairs[1]])
    with pytest.raises(NotFound, match="no output 'nope'"):
        infer_response(
            "m", "1", "r", model, outs, [pb.ModelInferRequest.InferRequestedOutputTensor(name="nope")]
        )
