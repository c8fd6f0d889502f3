"""KServe's Python ``ModelServer`` serving an ONNX model through onnxruntime: the peer of the router in
``benchmarks/protocols.py``. Runs in the clients venv (``make clients-venv``: kserve's pins do not fit the
main lock).

    .venv-clients/bin/python benchmarks/kserve_peer.py --model_path M.onnx --model_name demo \
        --http_port P --grpc_port G [--enable_latency_logging False]

A custom ``kserve.Model`` with the router's session options (1 intra-op and 1 inter-op thread,
sequential, CPU provider): OIP v2 over REST (``/v2/models/demo/infer``, JSON and the binary extension)
and gRPC (``raw_input_contents``), answered from ``InferRequest.inputs[i].as_numpy()``.
"""

from __future__ import annotations

import argparse
from typing import Any

import kserve
import numpy as np
import onnxruntime as ort
from kserve import InferOutput, InferRequest, InferResponse, Model, ModelServer

DATATYPES = {np.dtype(np.float32): "FP32", np.dtype(np.int64): "INT64", np.dtype(np.float64): "FP64"}


class OnnxModel(Model):
    """One onnxruntime session answering OIP v2 inference requests."""

    def __init__(self, name: str, path: str) -> None:
        super().__init__(name)
        self.path = path
        self.load()

    def load(self) -> bool:
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        self.session = ort.InferenceSession(self.path, opts, providers=["CPUExecutionProvider"])
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.ready = True
        return self.ready

    async def predict(
        self,
        payload: Any,
        headers: dict[str, str] | None = None,
        response_headers: dict[str, str] | None = None,
    ) -> InferResponse:
        assert isinstance(payload, InferRequest)
        feeds = {i.name: i.as_numpy() for i in payload.inputs}
        outputs = self.session.run(self.output_names, feeds)
        infer_outputs = []
        for name, out in zip(self.output_names, outputs, strict=True):
            o = InferOutput(name=name, shape=list(out.shape), datatype=DATATYPES[out.dtype])
            o.set_data_from_numpy(out, binary_data=False)
            infer_outputs.append(o)
        return InferResponse(response_id=payload.id or "", model_name=self.name, infer_outputs=infer_outputs)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(parents=[kserve.model_server.parser])
    parser.add_argument("--model_path", required=True)
    args, _ = parser.parse_known_args()
    model = OnnxModel(args.model_name, args.model_path)
    ModelServer(http_port=args.http_port, grpc_port=args.grpc_port, workers=1).start([model])
