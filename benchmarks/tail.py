"""Tail diagnosis: where the p99 at 16 connections comes from, measured inside the minimal app.

``benchmarks/serving.py`` gives the router a p99 bar (5 ms at 16 connections). This script asks whether
a server can meet it on this machine at all. It runs the serving benchmark's minimal ASGI app (the
practical ceiling: parse JSON, ``session.run``, answer) under the same pinned ``wrk -c16`` load, with
timestamps taken inside the app around each part of each request, and the thread's own CPU clock.

From those it finds the slowest 1 % of windows of 16 consecutive requests (16 connections: one window
is one request's wait when every connection has one in flight; these windows make the p99) and
compares them with the rest:

- ``run``: the same ``session.run`` on the same row, a fixed amount of work in one C call. If it takes
  several times longer inside the slow windows, the CPU itself was slower for the server then, which
  no server code can change.
- ``on-CPU``: the thread's CPU time over wall time inside those windows. Near 100 % means the thread
  was running (from the kernel's view), not waiting for the CPU, the network or a lock.

Usage: ``.venv/bin/python benchmarks/tail.py [--rounds 3] [--duration 8] [--connections 16]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script: the repository root
from benchmarks.serving import (
    demo_model,
    free_port,
    post_lua,
    split_cpus,
    start,
    stop,
    uvicorn_cmd,
    wait,
    wrk,
)

APP = """
import os, time, numpy as np, onnxruntime as ort, orjson
opts = ort.SessionOptions(); opts.intra_op_num_threads = 1; opts.inter_op_num_threads = 1
opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL  # as in the serving benchmark's minimal app
sess = ort.InferenceSession(os.environ["BENCH_MODEL"], opts, providers=["CPUExecutionProvider"])
name = sess.get_inputs()[0].name
outs = [o.name for o in sess.get_outputs()]
T = np.zeros((2_000_000, 5), dtype=np.int64); N = [0]
pc, tt = time.perf_counter_ns, time.thread_time_ns
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    if scope["method"] == "GET":
        if scope["path"] == "/dump":
            np.save(os.environ["BENCH_DUMP"], T[:N[0]]); N[0] = 0
        elif scope["path"] == "/reset":
            N[0] = 0
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})
        return
    t0, c0 = pc(), tt()
    body = b""
    while True:
        m = await receive(); body += m.get("body", b"")
        if not m.get("more_body"): break
    x = np.asarray(orjson.loads(body)["inputs"], dtype=np.float32)
    t1 = pc()
    res = sess.run(outs, {name: x})
    t2 = pc()
    out = orjson.dumps({"predictions": dict(zip(outs, res))}, option=orjson.OPT_SERIALIZE_NUMPY)
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": out})
    n = N[0]
    if n < len(T):
        T[n] = (t0, t1, t2, pc(), tt() - c0); N[0] = n + 1
"""


def analyse(t: np.ndarray, window: int) -> dict[str, float]:
    """Compare the slowest 1 % of ``window``-request windows with the rest.

    Args:
        t: one row per request: start, run start, run end, end (ns, perf_counter), thread CPU ns.
        window: requests per window (the number of connections).

    Returns:
        The window quantiles (ms), the median ``session.run`` inside and outside the slow windows (µs),
        and the thread's CPU share of the wall time inside them.
    """
    t = t.astype(np.float64)
    run = (t[:, 2] - t[:, 1]) / 1e3
    span = (t[window - 1 :, 3] - t[: len(t) - window + 1, 0]) / 1e6  # start of request i to end of i + 15
    p99 = float(np.percentile(span, 99))
    inside = np.zeros(len(t), dtype=bool)
    for i in np.argsort(span, kind="stable")[-max(1, len(span) // 100) :]:  # the slowest 1 % of windows
        inside[i : i + window] = True
    busy = t[inside, 3] - t[inside, 0]
    return {
        "window_p50": float(np.median(span)),
        "window_p99": p99,
        "run_in": float(np.median(run[inside])),
        "run_out": float(np.median(run[~inside])),
        "on_cpu": float(t[inside, 4].sum() / busy.sum()) if busy.sum() else float("nan"),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=int, default=8, help="seconds of each measured wrk run")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    server_cpus, wrk_cpus, pin_note = split_cpus(None)
    tmp = Path(tempfile.mkdtemp(prefix="bench-tail-"))
    model = demo_model(tmp / "model.onnx")
    lua = post_lua(tmp / "post.lua")
    (tmp / "tail_app.py").write_text(APP)
    dump = tmp / "times.npy"
    port = free_port()
    env = {**os.environ, "BENCH_MODEL": str(model), "BENCH_DUMP": str(dump)}
    cmd = [c.replace("{port}", str(port)) for c in uvicorn_cmd("tail_app:app")]
    proc = start(cmd, env, tmp, tmp / "app.log", server_cpus)
    base = f"http://127.0.0.1:{port}"
    print(f"minimal ASGI app, timed inside; wrk -t1 -c{args.connections} -d{args.duration}s; {pin_note}")
    rows = []
    try:
        wait(f"{base}/", proc)
        for i in range(args.rounds):
            wrk(f"{base}/invocations", lua, args.warmup, args.connections, wrk_cpus)
            wait(f"{base}/reset", proc)
            r = wrk(f"{base}/invocations", lua, args.duration, args.connections, wrk_cpus)
            wait(f"{base}/dump", proc)
            a = analyse(np.load(dump), args.connections)
            rows.append((r, a))
            print(
                f"  round {i + 1}: {r['rps']:>6.0f} req/s  wrk p50 {r['p50']:5.2f} ms  p99 {r['p99']:6.2f} ms | "
                f"{args.connections}-request windows p50 {a['window_p50']:5.2f} ms  p99 {a['window_p99']:5.2f} ms | "
                f"session.run median {a['run_in']:5.1f} us in the slowest 1 % of windows, "
                f"{a['run_out']:5.1f} us elsewhere ({a['run_in'] / a['run_out']:.1f}x)  on-CPU {a['on_cpu'] * 100:3.0f}%",
                flush=True,
            )
    finally:
        stop(proc)
    slow = statistics.median(a["run_in"] / a["run_out"] for _, a in rows)
    print(
        f"\nminimal app p99 (median of rounds) = {statistics.median(r['p99'] for r, _ in rows):.2f} ms; "
        f"in the windows that make it, the same session.run took {slow:.1f}x as long as elsewhere, "
        f"with the thread on the CPU {statistics.median(a['on_cpu'] for _, a in rows) * 100:.0f}% of the time"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
