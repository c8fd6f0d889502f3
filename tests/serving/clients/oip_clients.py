"""Drive a router with the official OIP v2 client libraries; print what they return as one JSON object.

Runs in the clients venv (``make clients-venv``: tritonclient and kserve pin versions the main lock cannot
hold; see ``docs/router.md``), started by ``tests/serving/test_clients.py``:

    .venv-clients/bin/python tests/serving/clients/oip_clients.py {triton|kserve} HTTP_URL GRPC_TARGET

One library per process: each registers its own copy of the ``inference.*`` protobuf messages, and one
process cannot hold both.

Each scenario records either the outputs (``{name: {"dtype", "shape", "data"}}``) or the error the
library raised (its type, status and message), so the test compares them with onnxruntime's answers and
with the router's messages.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable
from typing import Any

import numpy as np

ROWS = np.array([[0.5, -1.0, 2.0, 0.25], [1.5, 0.0, -0.5, 3.0], [0.0, 0.1, 0.2, 0.3]], dtype=np.float32)
CODES = np.array([[1, 2, 3], [-4, 0, 9], [7, 7, -7]], dtype=np.int64)


def arrays(result: Any, names: list[str]) -> dict[str, Any]:
    out = {}
    for n in names:
        a = np.asarray(result.as_numpy(n))
        out[n] = {"dtype": a.dtype.name, "shape": list(a.shape), "data": a.ravel().tolist()}
    return out


def error(e: BaseException) -> dict[str, Any]:
    status = None
    for attr in ("status", "code"):
        fn = getattr(e, attr, None)
        if callable(fn):
            status = str(fn())
            break
    if status is None and getattr(e, "response", None) is not None:
        status = str(e.response.status_code)  # type: ignore[attr-defined]
    message = e.message() if hasattr(e, "message") and callable(e.message) else None
    if message is None and hasattr(e, "details") and callable(e.details):
        message = e.details()
    return {"error": type(e).__name__, "status": status, "message": message or str(e)}


def run(results: dict[str, Any], name: str, fn: Callable[[], Any]) -> None:
    try:
        results[name] = {"ok": fn()}
    except Exception as e:  # recorded for the test to judge
        results[name] = error(e)


def triton(results: dict[str, Any], http_url: str, grpc_target: str) -> None:
    import tritonclient.grpc as tg
    import tritonclient.http as th

    for proto, mod, client in (
        ("http", th, th.InferenceServerClient(http_url.removeprefix("http://"))),
        ("grpc", tg, tg.InferenceServerClient(grpc_target)),
    ):
        p = f"triton_{proto}_"
        run(results, p + "live", client.is_server_live)
        run(results, p + "ready", client.is_server_ready)
        run(results, p + "model_ready", lambda c=client: c.is_model_ready("churn"))

        def server_meta(c: Any = client, proto: str = proto) -> Any:
            m = c.get_server_metadata()
            return m if proto == "http" else {"name": m.name, "extensions": list(m.extensions)}

        def model_meta(c: Any = client, proto: str = proto) -> Any:
            m = c.get_model_metadata("codes")
            if proto == "http":
                return {"inputs": m["inputs"], "outputs": m["outputs"]}
            return {
                k: [{"name": t.name, "datatype": t.datatype, "shape": list(t.shape)} for t in getattr(m, k)]
                for k in ("inputs", "outputs")
            }

        run(results, p + "server_metadata", server_meta)
        run(results, p + "model_metadata", model_meta)

        def infer(
            model: str,
            name: str,
            arr: np.ndarray,
            dt: str,
            binary: bool,
            mod: Any = mod,
            c: Any = client,
            outs: tuple[str, ...] = ("probabilities",),
            headers: dict[str, str] | None = None,
        ) -> Any:
            inp = mod.InferInput(name, list(arr.shape), dt)
            if mod is th:
                inp.set_data_from_numpy(arr, binary_data=binary)
                wanted = [mod.InferRequestedOutput(o, binary_data=binary) for o in outs]
            else:
                inp.set_data_from_numpy(arr)
                wanted = [mod.InferRequestedOutput(o) for o in outs]
            return arrays(c.infer(model, [inp], outputs=wanted, headers=headers), list(outs))

        run(results, p + "fp32_binary", lambda f=infer: f("churn", "input", ROWS, "FP32", True))
        run(results, p + "fp32_json", lambda f=infer: f("churn", "input", ROWS, "FP32", False))
        run(
            results,
            p + "int64_binary",
            lambda f=infer: f("codes", "codes", CODES, "INT64", True, outs=("label", "score")),
        )
        run(
            results,
            p + "int64_json",
            lambda f=infer: f("codes", "codes", CODES, "INT64", False, outs=("score", "label")),
        )
        run(results, p + "unknown_model", lambda f=infer: f("nope", "input", ROWS, "FP32", True))
        run(
            results,
            p + "wrong_datatype",
            lambda f=infer: f("churn", "input", ROWS.astype(np.float64), "FP64", True),
        )
        run(results, p + "wrong_shape", lambda f=infer: f("churn", "input", ROWS[:, :3].copy(), "FP32", True))
        run(
            results,
            p + "pin_without_key",
            lambda f=infer: f("churn", "input", ROWS, "FP32", True, headers={"x-variant": "canary"}),
        )
        run(results, p + "unknown_model_metadata", lambda c=client: c.get_model_metadata("nope"))
        client.close()


async def kserve_calls(results: dict[str, Any], http_url: str, grpc_target: str) -> None:
    from kserve import InferenceGRPCClient, InferenceRESTClient, InferInput, InferRequest
    from kserve.inference_client import RESTConfig
    from kserve.protocol.infer_type import RequestedOutput

    async def arun(name: str, coro: Any) -> None:
        try:
            results[name] = {"ok": await coro}
        except Exception as e:  # recorded for the test to judge
            results[name] = error(e)

    def request(model: str, name: str, arr: np.ndarray, dt: str, binary: bool, outs: tuple[str, ...]) -> Any:
        inp = InferInput(name, list(arr.shape), dt)
        inp.set_data_from_numpy(arr, binary_data=binary)
        wanted = [RequestedOutput(o, parameters={"binary_data": binary}) for o in outs]
        return InferRequest(model_name=model, infer_inputs=[inp], request_outputs=wanted)

    rest = InferenceRESTClient(RESTConfig(protocol="v2", retries=0))

    async def rest_infer(
        model: str, name: str, arr: np.ndarray, dt: str, binary: bool, outs: tuple[str, ...]
    ) -> Any:
        resp = await rest.infer(http_url, request(model, name, arr, dt, binary, outs), model_name=model)
        return arrays(_Named(resp), list(outs))

    await arun("kserve_rest_live", rest.is_server_live(http_url))
    await arun("kserve_rest_ready", rest.is_server_ready(http_url))
    await arun("kserve_rest_model_ready", rest.is_model_ready(http_url, "churn"))
    await arun("kserve_rest_fp32_json", rest_infer("churn", "input", ROWS, "FP32", False, ("probabilities",)))
    await arun(
        "kserve_rest_fp32_binary", rest_infer("churn", "input", ROWS, "FP32", True, ("probabilities",))
    )
    await arun(
        "kserve_rest_int64_binary", rest_infer("codes", "codes", CODES, "INT64", True, ("label", "score"))
    )
    await arun(
        "kserve_rest_unknown_model", rest_infer("nope", "input", ROWS, "FP32", False, ("probabilities",))
    )
    await arun(
        "kserve_rest_wrong_datatype",
        rest_infer("churn", "input", ROWS.astype(np.float64), "FP64", True, ("probabilities",)),
    )
    await rest.close()

    g = InferenceGRPCClient(grpc_target, retries=0)

    async def grpc_infer(model: str, name: str, arr: np.ndarray, dt: str, outs: tuple[str, ...]) -> Any:
        resp = await g.infer(request(model, name, arr, dt, True, outs), headers=[("x-unit-id", "client-7")])
        return arrays(_Named(resp), list(outs))

    await arun("kserve_grpc_live", g.is_server_live())
    await arun("kserve_grpc_ready", g.is_server_ready())
    await arun("kserve_grpc_model_ready", g.is_model_ready("churn"))
    await arun("kserve_grpc_fp32", grpc_infer("churn", "input", ROWS, "FP32", ("probabilities",)))
    await arun("kserve_grpc_int64", grpc_infer("codes", "codes", CODES, "INT64", ("label", "score")))
    await arun("kserve_grpc_unknown_model", grpc_infer("nope", "input", ROWS, "FP32", ("probabilities",)))
    await arun(
        "kserve_grpc_wrong_shape",
        grpc_infer("churn", "input", ROWS[:, :3].copy(), "FP32", ("probabilities",)),
    )
    await g.close()


class _Named:
    """``as_numpy(name)`` over a kserve ``InferResponse``."""

    def __init__(self, resp: Any) -> None:
        self.by_name = {o.name: o for o in resp.outputs}

    def as_numpy(self, name: str) -> np.ndarray:
        return self.by_name[name].as_numpy()


def main() -> int:
    which, http_url, grpc_target = sys.argv[1], sys.argv[2], sys.argv[3]
    results: dict[str, Any] = {}
    if which == "triton":
        triton(results, http_url, grpc_target)
    else:
        asyncio.run(kserve_calls(results, http_url, grpc_target))
    json.dump(results, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
