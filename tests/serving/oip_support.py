"""Helpers of the OIP v2 protocol tests: an INT64 model and a plain gRPC caller of the router's service."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import grpc
import numpy as np

INT64_WEIGHTS = np.array([[0.5], [-0.25], [0.125]], dtype=np.float32)


def make_int64_onnx(path: Path) -> Path:
    """Write a model taking ``codes`` int64[N, 3]; outputs ``score`` float[N, 1] = codes @ W and
    ``label`` int64[N] = (score > 0), so INT64 travels both ways."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes = [
        helper.make_node("Cast", ["codes"], ["x"], to=TensorProto.FLOAT),
        helper.make_node("MatMul", ["x", "W"], ["score"]),
        helper.make_node("Greater", ["score", "zero"], ["pos"]),
        helper.make_node("Cast", ["pos"], ["pos64"], to=TensorProto.INT64),
        helper.make_node("Squeeze", ["pos64", "axis"], ["label"]),
    ]
    graph = helper.make_graph(
        nodes,
        "int64",
        [helper.make_tensor_value_info("codes", TensorProto.INT64, [None, 3])],
        [
            helper.make_tensor_value_info("score", TensorProto.FLOAT, [None, 1]),
            helper.make_tensor_value_info("label", TensorProto.INT64, [None]),
        ],
        initializer=[
            numpy_helper.from_array(INT64_WEIGHTS, "W"),
            numpy_helper.from_array(np.array([0.0], dtype=np.float32), "zero"),
            numpy_helper.from_array(np.array([1], dtype=np.int64), "axis"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


class OipGrpc:
    """Calls ``inference.GRPCInferenceService`` RPCs by name with the router's own protobuf messages."""

    def __init__(self, target: str) -> None:
        from router._proto import grpc_predict_v2_pb2 as pb

        self.pb = pb
        self.channel = grpc.insecure_channel(target)

    def call(self, rpc: str, request: Any, metadata: list[tuple[str, str]] | None = None) -> tuple[Any, Any]:
        """Return (response, call) of one RPC; raises ``grpc.RpcError`` on a non-OK status."""
        response_type = getattr(self.pb, rpc + "Response")
        stub = self.channel.unary_unary(
            f"/inference.GRPCInferenceService/{rpc}",
            request_serializer=type(request).SerializeToString,
            response_deserializer=response_type.FromString,
        )
        return stub.with_call(request, metadata=metadata or (), timeout=30)

    def infer(self, model: str, arrays: dict[str, np.ndarray], raw: bool = True, **kw: Any) -> Any:
        """Build a ``ModelInferRequest`` from numpy arrays (raw contents or typed contents)."""
        pb = self.pb
        req = pb.ModelInferRequest(model_name=model, **kw)
        for name, arr in arrays.items():
            datatype = {"float32": "FP32", "int64": "INT64", "float64": "FP64"}[arr.dtype.name]
            t = req.inputs.add(name=name, datatype=datatype, shape=arr.shape)
            if raw:
                req.raw_input_contents.append(arr.tobytes())
            elif datatype == "FP32":
                t.contents.fp32_contents.extend(arr.ravel().tolist())
            elif datatype == "INT64":
                t.contents.int64_contents.extend(arr.ravel().tolist())
            else:
                t.contents.fp64_contents.extend(arr.ravel().tolist())
        return req

    def close(self) -> None:
        self.channel.close()


def raw_outputs(resp: Any) -> dict[str, np.ndarray]:
    """Decode ``raw_output_contents`` of a ``ModelInferResponse`` into arrays by output name."""
    dtypes = {"FP32": np.float32, "INT64": np.int64, "FP64": np.float64}
    return {
        o.name: np.frombuffer(buf, dtype=dtypes[o.datatype]).reshape(list(o.shape))
        for o, buf in zip(resp.outputs, resp.raw_output_contents, strict=True)
    }
