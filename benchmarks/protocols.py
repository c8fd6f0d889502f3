"""Protocol benchmark: the router over REST and gRPC, next to KServe's Python ``ModelServer`` serving the
same ONNX model through onnxruntime (``benchmarks/kserve_peer.py``), the same load and the same pinning.

Rows (each server started alone, warmed up, measured, stopped; rounds interleave them; medians printed):

- single-row model (``benchmarks/serving.py``'s demo model, float[1,30]): router REST (OIP v2 JSON,
  ``wrk``), router gRPC (``raw_input_contents``, ``benchmarks/grpc_load.py``), KServe REST, KServe gRPC;
- a 1,000-float input (float[1,1000]): router REST JSON, router REST with the binary extension, router
  gRPC with raw contents;
- ``same-client`` rows: the router's REST and gRPC rows again, both driven by ``benchmarks/raw_load.py``
  (one closed-loop client for both protocols), since ``wrk`` and the Python grpc client differ in cost
  more than the two protocols do.

After every router run the router is stopped (its events flushed) and its event files are counted: they
must equal the scored requests the router counted (``router_requests_total``), and cover what the
client saw answered. CPU pinning as in ``benchmarks/serving.py`` (server set / load set). KServe runs in
``.venv-clients`` (``make clients-venv``), with its defaults except latency logging off (the router logs
nothing per request either).

Usage: ``.venv/bin/python benchmarks/protocols.py [--rounds 2] [--duration 5] [--warmup 2]
[--connections 16] [--no-pin] [--only TEXT[,TEXT]]`` (``--only``: the rows whose label contains a text)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from serving import (
    BIN,
    REPO,
    count_events,
    demo_model,
    free_port,
    group_cpu_seconds,
    metric,
    router_cmd,
    split_cpus,
    start,
    stop,
    wait,
    wrk,
)

ROUTER_DIR = REPO / "serving_images" / "router"
CLIENTS_PY = REPO / ".venv-clients" / "bin" / "python"
sys.path.insert(0, str(ROUTER_DIR))


def wide_model(path: Path, width: int = 1000) -> Path:
    """Write a logistic model over ``width`` floats: input float[N,width] -> probabilities float[N,2]."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = (np.random.default_rng(11).normal(size=(width, 1)) / np.sqrt(width)).astype(np.float32)
    nodes = [
        helper.make_node("MatMul", ["input", "W"], ["z"]),
        helper.make_node("Sigmoid", ["z"], ["p1"]),
        helper.make_node("Sub", ["one", "p1"], ["p0"]),
        helper.make_node("Concat", ["p0", "p1"], ["probabilities"], axis=1),
    ]
    graph = helper.make_graph(
        nodes,
        "wide",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [None, width])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, 2])],
        initializer=[
            numpy_helper.from_array(w, "W"),
            numpy_helper.from_array(np.array([1.0], np.float32), "one"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def lua_string(data: bytes) -> str:
    """A Lua string literal holding ``data`` byte for byte."""
    return (
        '"' + "".join(chr(b) if 32 <= b < 127 and chr(b) not in '"\\' else f"\\{b:03d}" for b in data) + '"'
    )


def rest_lua(path: Path, body: bytes, headers: dict[str, str]) -> Path:
    """A wrk script POSTing ``body`` with ``headers`` and a cycling ``X-Unit-Id``; prints p95 / p99.9."""
    hdrs = "\n".join(f'wrk.headers["{k}"] = "{v}"' for k, v in headers.items())
    path.write_text(
        f"""wrk.method = "POST"
wrk.body = {lua_string(body)}
{hdrs}
counter = 0
request = function()
  counter = counter + 1
  wrk.headers["X-Unit-Id"] = "unit-" .. (counter % 10000)
  return wrk.format(nil)
end
done = function(summary, latency, requests)
  for _, p in ipairs({{95, 99.9}}) do
    io.write(string.format("PCT %s %.3f\\n", p, latency:percentile(p) / 1000))
  end
end
"""
    )
    return path


def bodies(row: np.ndarray) -> dict[str, tuple[bytes, dict[str, str]]]:
    """The REST bodies (JSON, binary extension) and the gRPC request bytes for one row."""
    from router._proto import grpc_predict_v2_pb2 as pb

    shape = list(row.shape)
    doc = {"inputs": [{"name": "input", "shape": shape, "datatype": "FP32", "data": row.ravel().tolist()}]}
    head = json.dumps(
        {
            "inputs": [
                {
                    "name": "input",
                    "shape": shape,
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": row.nbytes},
                }
            ]
        }
    ).encode()
    req = pb.ModelInferRequest(model_name="demo")
    req.inputs.add(name="input", datatype="FP32", shape=shape)
    req.raw_input_contents.append(row.astype("<f4").tobytes())
    return {
        "json": (json.dumps(doc).encode(), {"Content-Type": "application/json"}),
        "binary": (
            head + row.astype("<f4").tobytes(),
            {"Content-Type": "application/octet-stream", "Inference-Header-Content-Length": str(len(head))},
        ),
        "grpc": (req.SerializeToString(), {}),
    }


def grpc_run(target: str, request: Path, seconds: int, connections: int, cpus: set[int] | None) -> dict:
    from serving import pinned

    out = subprocess.run(
        [
            str(BIN / "python"),
            str(REPO / "benchmarks" / "grpc_load.py"),
            target,
            str(request),
            str(seconds),
            str(connections),
        ],
        capture_output=True,
        text=True,
        check=True,
        preexec_fn=pinned(cpus),
    ).stdout
    r = json.loads(out)
    r["non2xx"] = float(sum(r["errors"].values()))
    return r


def raw_run(
    proto: str,
    target: str,
    path: str,
    request: Path,
    seconds: int,
    connections: int,
    cpus: set[int] | None,
    headers: dict[str, str],
) -> dict:
    """One run of ``benchmarks/raw_load.py`` (the same client code for REST and gRPC)."""
    from serving import pinned

    extra = [f"{k}:{v}" for k, v in headers.items()]
    out = subprocess.run(
        [
            *(str(BIN / "python"), str(REPO / "benchmarks" / "raw_load.py"), proto, target, path),
            *(str(request), str(seconds), str(connections), *extra),
        ],
        capture_output=True,
        text=True,
        check=True,
        preexec_fn=pinned(cpus),
    ).stdout
    r = json.loads(out)
    r["non2xx"] = float(sum(r["errors"].values()))
    return r


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--pin", action=argparse.BooleanOptionalAction, default=None)
    ap.add_argument(
        "--only", default="", help="run only the rows whose label contains one of these (comma-separated)"
    )
    args = ap.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is not installed: apt-get install -y wrk", file=sys.stderr)
        return 2
    if not CLIENTS_PY.exists():
        print("the KServe peer needs .venv-clients: make clients-venv", file=sys.stderr)
        return 2
    server_cpus, load_cpus, pin_note = split_cpus(args.pin)
    tmp = Path(tempfile.mkdtemp(prefix="bench-protocols-"))
    small = demo_model(tmp / "small.onnx")
    wide = wide_model(tmp / "wide.onnx")
    row30 = np.array([[(i % 7) / 7 - 0.4 for i in range(30)]], dtype=np.float32)
    row1000 = np.random.default_rng(3).normal(size=(1, 1000)).astype(np.float32)
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    b30, b1000 = bodies(row30), bodies(row1000)
    for key, (body, _) in {
        **{f"30-{k}": v for k, v in b30.items()},
        **{f"1000-{k}": v for k, v in b1000.items()},
    }.items():
        (tmp / f"{key}.bin").write_bytes(body)
    # (label, server, model, protocol, body key)
    rows = [
        ("router REST 1 row", "router", small, "rest", "json"),
        ("router gRPC 1 row", "router", small, "grpc", "grpc"),
        ("KServe REST 1 row", "kserve", small, "rest", "json"),
        ("KServe gRPC 1 row", "kserve", small, "grpc", "grpc"),
        ("router REST 1000 JSON", "router", wide, "rest", "json"),
        ("router REST 1000 binary", "router", wide, "rest", "binary"),
        ("router gRPC 1000 raw", "router", wide, "grpc", "grpc"),
        # the same client code (benchmarks/raw_load.py) for both protocols
        ("same-client router REST 1 row", "router", small, "rest-raw", "json"),
        ("same-client router gRPC 1 row", "router", small, "grpc-raw", "grpc"),
        ("same-client router REST 1000 JSON", "router", wide, "rest-raw", "json"),
        ("same-client router REST 1000 binary", "router", wide, "rest-raw", "binary"),
        ("same-client router gRPC 1000 raw", "router", wide, "grpc-raw", "grpc"),
    ]
    if args.only:
        rows = [r for r in rows if any(o.strip() in r[0] for o in args.only.split(","))]
    results: dict[str, list[dict]] = {}
    event_checks: list[str] = []

    def run(i: int, label: str, server: str, model: Path, proto: str, key: str) -> None:
        http_port, grpc_port = free_port(), free_port()
        width = "1000" if model == wide else "30"
        body, headers = (b1000 if model == wide else b30)[key]
        events = tmp / f"events-{i}-{label.replace(' ', '_')}"
        if server == "router":
            routes = tmp / f"routes-{width}.yaml"
            routes.write_text(
                f"models:\n  demo:\n    salt: bench\n    variants:\n"
                f"      - {{name: champion, uri: {model}, weight_bp: 9000}}\n"
                f"      - {{name: canary, uri: {model}, weight_bp: 1000}}\n"
            )
            cmd = [*router_cmd(routes, tmp / f"state-{i}-{label}", events), "--grpc-port", str(grpc_port)]
            cmd = [c.replace("{port}", str(http_port)) for c in cmd]
            cwd, health = ROUTER_DIR, "/v2/health/ready"
        else:
            cmd = [
                str(CLIENTS_PY),
                str(REPO / "benchmarks" / "kserve_peer.py"),
                "--model_path",
                str(model),
                "--model_name",
                "demo",
                "--http_port",
                str(http_port),
                "--grpc_port",
                str(grpc_port),
                "--enable_latency_logging",
                "False",
            ]
            cwd, health = tmp, "/v2/health/ready"
        proc = start(cmd, env, cwd, tmp / f"{label}.log", server_cpus)
        base = f"http://127.0.0.1:{http_port}"
        try:
            wait(base + health, proc)
            if proto == "rest":
                lua = rest_lua(tmp / f"{width}-{key}.lua", body, headers)
                url = f"{base}/v2/models/demo/infer"
                wrk(url, lua, args.warmup, args.connections, load_cpus)
                cpu0 = group_cpu_seconds(proc.pid)
                r = wrk(url, lua, args.duration, args.connections, load_cpus)
            elif proto.endswith("-raw"):
                kind = proto.removesuffix("-raw")
                target = f"127.0.0.1:{http_port if kind == 'rest' else grpc_port}"
                path = (
                    "/v2/models/demo/infer"
                    if kind == "rest"
                    else "/inference.GRPCInferenceService/ModelInfer"
                )
                request = tmp / f"{width}-{key}.bin"
                raw_run(kind, target, path, request, args.warmup, args.connections, load_cpus, headers)
                cpu0 = group_cpu_seconds(proc.pid)
                r = raw_run(kind, target, path, request, args.duration, args.connections, load_cpus, headers)
            else:
                target, request = f"127.0.0.1:{grpc_port}", tmp / f"{width}-grpc.bin"
                grpc_run(target, request, args.warmup, args.connections, load_cpus)
                cpu0 = group_cpu_seconds(proc.pid)
                r = grpc_run(target, request, args.duration, args.connections, load_cpus)
            r["cpu_us"] = (group_cpu_seconds(proc.pid) - cpu0) / max(r["rps"] * args.duration, 1) * 1e6
            scored = metric(base, "router_requests_total") if server == "router" else None
        finally:
            stop(proc)
        results.setdefault(label, []).append(r)
        line = (
            f"  {label:<36} {r['rps']:>8.0f} req/s  p50 {r['p50']:>6.2f} ms  p99 {r['p99']:>7.2f} ms"
            f"  server cpu {r['cpu_us']:>5.0f} us/req  errors {r['non2xx']:.0f}"
        )
        if scored is not None:
            n = count_events(events)
            ok = "ok" if n == scored else "MISMATCH"
            line += f"  events {n} / scored {scored:.0f} ({ok})"
            event_checks.append(ok)
        print(line, flush=True)

    print(
        f"{len(rows)} rows, {args.rounds} rounds; {pin_note}; load average {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    for i in range(args.rounds):
        print(f"round {i + 1}", flush=True)
        for row in rows if i % 2 == 0 else rows[::-1]:
            run(i, *row)
    summarize(results)
    bad = event_checks.count("MISMATCH")
    print(
        f"event files == scored requests after {len(event_checks)} router runs: {'yes' if not bad else f'NO ({bad})'}"
    )
    errors = sum(r["non2xx"] for rs in results.values() for r in rs)
    print(f"non-2xx / non-OK answers over all runs: {errors:.0f}; files in {tmp}")
    return 0 if not bad and not errors else 1


def summarize(results: dict[str, list[dict]]) -> None:
    def med(label: str, key: str) -> float:
        return statistics.median(r[key] for r in results[label])

    print("\nmedians over rounds:")
    for label in results:
        print(
            f"  {label:<36} {med(label, 'rps'):>8.0f} req/s  p50 {med(label, 'p50'):>6.2f} ms"
            f"  p99 {med(label, 'p99'):>7.2f} ms  server cpu {med(label, 'cpu_us'):>5.0f} us/req"
        )
    print()
    for prefix, client in (("", "wrk / Python grpc client"), ("same-client ", "benchmarks/raw_load.py")):
        pairs = [
            ("gRPC / REST, 1 row", f"{prefix}router gRPC 1 row", f"{prefix}router REST 1 row", ">= 0.8x"),
            (
                "gRPC raw / REST JSON, 1000 floats",
                f"{prefix}router gRPC 1000 raw",
                f"{prefix}router REST 1000 JSON",
                "> 1x",
            ),
            (
                "gRPC raw / REST binary, 1000 floats",
                f"{prefix}router gRPC 1000 raw",
                f"{prefix}router REST 1000 binary",
                "",
            ),
        ]
        for what, a, b, bar in pairs:
            if a in results and b in results:
                print(
                    f"router {what} ({client}) = {med(a, 'rps') / med(b, 'rps'):.2f}x req/s"
                    f"{f' (bar {bar})' if bar else ''}; server CPU per call {med(a, 'cpu_us') / med(b, 'cpu_us'):.2f}x"
                )
    for proto in ("REST", "gRPC"):
        r, k = f"router {proto} 1 row", f"KServe {proto} 1 row"
        if r in results and k in results:
            print(
                f"router / KServe ModelServer, {proto:<4} = {med(r, 'rps') / med(k, 'rps'):.2f}x req/s, "
                f"p99 {med(r, 'p99'):.2f} vs {med(k, 'p99'):.2f} ms"
            )


if __name__ == "__main__":
    sys.exit(main())
