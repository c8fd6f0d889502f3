"""Serving benchmark: router vs ``mlflow models serve`` vs a minimal ASGI app, same model, same load.

Starts each server alone (the others stopped) with one worker on loopback, warms it up, drives it
with ``wrk`` (Debian package) and a Lua script that POSTs the same single-row ``/invocations`` body,
and prints requests/s, p50, p99 and the CPU the server's process group spent per request. It does
this for several rounds, interleaving the servers, and prints the medians and the ratios the router
issue asks for (a shared machine's load moves single runs a lot). The router runs with routing (two
variants, sticky unit ids), metrics and events on; a second router run adds a 10 % shadow. The shadow
cost is the median of each round's pair (the two router runs are adjacent and swap places every other
round), so that the machine's drift between rounds does not enter it. ``benchmarks/tail.py`` shows
where the p99 of the minimal app comes from on this machine. ``benchmarks/protocols.py`` (``make
bench-protocols``) adds the router over gRPC and KServe's ``ModelServer`` as a peer on REST and gRPC.

CPU pinning (``--pin``, the default when this process may run on at least 2 CPUs): the CPUs this
process may use are split in two; every server is started on the first set (its children, such as
the router's event writer process and mlflow's uvicorn, inherit it) and ``wrk`` on the second, so load
generator and server do not preempt each other or migrate across each other's CPU. Applied the same way
to every server; ``--no-pin`` (or fewer than 2 CPUs, with a printed note) runs everything unpinned.

Usage: ``.venv/bin/python benchmarks/serving.py [--rounds 3] [--duration 8] [--connections 16] [--no-pin]
[--skip-mlflow] [--router-env ROUTER_EVENTS_ENABLED=false ...]``
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request
from collections.abc import Callable, Iterable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

MINIMAL_APP = """
import os, numpy as np, onnxruntime as ort, orjson
opts = ort.SessionOptions(); opts.intra_op_num_threads = 1; opts.inter_op_num_threads = 1
opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL  # same session options as router/model.py
sess = ort.InferenceSession(os.environ["BENCH_MODEL"], opts, providers=["CPUExecutionProvider"])
name = sess.get_inputs()[0].name
outs = [o.name for o in sess.get_outputs()]
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    if scope["method"] == "GET":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})
        return
    body = b""
    while True:
        m = await receive(); body += m.get("body", b"")
        if not m.get("more_body"): break
    x = np.asarray(orjson.loads(body)["inputs"], dtype=np.float32)
    res = sess.run(outs, {name: x})
    out = orjson.dumps({"predictions": dict(zip(outs, res))}, option=orjson.OPT_SERIALIZE_NUMPY)
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": out})
"""


def demo_model(path: Path) -> Path:
    """Write the demo-shaped model: input float[N,30] -> label int64[N], probabilities float[N,2]."""
    try:
        import onnx

        from modelgate_dev.demo.models import build_linear_model

        onnx.save(build_linear_model(30, seed=7), str(path))
        return path
    except ImportError:
        pass
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = np.random.default_rng(7).normal(size=(30, 1)).astype(np.float32)
    nodes = [
        helper.make_node("MatMul", ["input", "W"], ["z0"]),
        helper.make_node("Add", ["z0", "B"], ["z"]),
        helper.make_node("Sigmoid", ["z"], ["p1"]),
        helper.make_node("Sub", ["one", "p1"], ["p0"]),
        helper.make_node("Concat", ["p0", "p1"], ["probabilities"], axis=1),
        helper.make_node("ArgMax", ["probabilities"], ["label"], axis=1, keepdims=0),
    ]
    graph = helper.make_graph(
        nodes,
        "demo",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [None, 30])],
        [
            helper.make_tensor_value_info("label", TensorProto.INT64, [None]),
            helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, 2]),
        ],
        initializer=[
            numpy_helper.from_array(w, "W"),
            numpy_helper.from_array(np.array([0.1], np.float32), "B"),
            numpy_helper.from_array(np.array([1.0], np.float32), "one"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def post_lua(path: Path) -> Path:
    """Write the wrk script every serving benchmark uses: the same single-row ``/invocations`` body,
    an ``X-Unit-Id`` cycling over 10,000 units, and p95 / p99.9 printed at the end."""
    row = ", ".join(f"{(i % 7) / 7 - 0.4:.4f}" for i in range(30))
    path.write_text(
        textwrap.dedent(f"""
        wrk.method = "POST"
        wrk.body = '{{"inputs": [[{row}]]}}'
        wrk.headers["Content-Type"] = "application/json"
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
    """)
    )
    return path


def routes_file(path: Path, model: Path, shadow: int | None) -> Path:
    """Write the benchmark's routes: two variants of ``model`` (90/10, sticky), and a shadow at
    ``shadow`` percent when given."""
    doc = (
        f"models:\n  demo:\n    salt: bench\n    variants:\n"
        f"      - {{name: champion, uri: {model}, weight_bp: 9000}}\n"
        f"      - {{name: canary, uri: {model}, weight_bp: 1000}}\n"
    )
    if shadow:
        doc += f"    shadow: {{variant: shadow, uri: {model}, percent: {shadow}}}\n"
    path.write_text(doc)
    return path


def uvicorn_cmd(app: str) -> list[str]:
    """The command line of a minimal app (``module:attribute``) under uvicorn, as every benchmark starts
    it: uvloop, httptools, no access log; ``{port}`` is filled in at start."""
    return [
        str(BIN / "python"),
        *("-m", "uvicorn", app, "--port", "{port}", "--loop", "uvloop"),
        *("--http", "httptools", "--log-level", "warning", "--no-access-log"),
    ]


def router_cmd(routes: Path, state: Path, events: Path) -> list[str]:
    """The router's command line (run from ``serving_images/router``); ``{port}`` is filled in at start."""
    return [
        str(BIN / "python"),
        *("-m", "router", "--routes", str(routes), "--port", "{port}", "--log-level", "warning"),
        *("--state-dir", str(state), "--events-root", str(events)),
    ]


def metric(base: str, name: str) -> float:
    """The sum of a metric's samples on ``base``/metrics (all label sets)."""
    with urllib.request.urlopen(f"{base}/metrics", timeout=10) as r:
        text = r.read().decode()
    return sum(
        float(line.split()[-1]) for line in text.splitlines() if line.startswith((name + "{", name + " "))
    )


def drained(base: str, timeout: float = 120) -> None:
    """Wait until the router holds no unwritten event (``router_events_buffered`` 0)."""
    deadline = time.monotonic() + timeout
    while metric(base, "router_events_buffered") > 0:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{base}: events still buffered after {timeout:.0f} s")
        time.sleep(0.2)


def after_window(base: str, pgid: int, cpu0: float, answered: float) -> dict[str, float]:
    """A router's backlog when the window closed, its CPU per request once that backlog is written too,
    and the requests it scored."""
    backlog = metric(base, "router_events_buffered")
    drained(base)
    return {
        "backlog": backlog,
        "cpu_drained_us": (group_cpu_seconds(pgid) - cpu0) / answered * 1e6,
        "scored": metric(base, "router_requests_total"),
    }


def events_line(cmd: list[str], r: dict[str, float], checks: list[str]) -> str:
    """Count a stopped router's event files against the requests it scored; the line that says so."""
    n = count_events(Path(cmd[cmd.index("--events-root") + 1]))
    ok = "ok" if n == r["scored"] else "MISMATCH"
    checks.append(ok)
    return (
        f"  backlog at window end {r['backlog']:.0f}, cpu with it written {r['cpu_drained_us']:.0f} us/req"
        f"  events {n} / scored {r['scored']:.0f} ({ok})"
    )


def count_events(root: Path) -> int:
    """Records in the Parquet event files under ``root``."""
    import pyarrow.parquet as pq

    return sum(pq.read_table(f).num_rows for f in sorted(root.rglob("*.parquet")))


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait(url: str, proc: subprocess.Popen[bytes], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server for {url} exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except Exception:
            time.sleep(0.3)
    raise TimeoutError(url)


def pinned(cpus: set[int] | None) -> Callable[[], None] | None:
    """A ``preexec_fn`` that restricts the child (and everything it starts) to ``cpus``; None: no pinning."""
    if cpus is None:
        return None
    frozen = frozenset(cpus)
    return lambda: os.sched_setaffinity(0, frozen)


def split_cpus(pin: bool | None) -> tuple[set[int] | None, set[int] | None, str]:
    """(server cpus, wrk cpus, a line describing it); (None, None, why) when not pinning."""
    avail = sorted(os.sched_getaffinity(0))
    if pin is False:
        return None, None, f"no CPU pinning (--no-pin; {len(avail)} CPUs available: {fmt_cpus(avail)})"
    if len(avail) < 2:
        return None, None, f"no CPU pinning: only {len(avail)} CPU available ({fmt_cpus(avail)})"
    half = (len(avail) + 1) // 2
    server, load = set(avail[:half]), set(avail[half:])
    note = f"CPU pinning: server (and its children) on CPU {fmt_cpus(server)}, wrk on CPU {fmt_cpus(load)}"
    return server, load, note


def fmt_cpus(cpus: Iterable[int]) -> str:
    return ",".join(str(c) for c in sorted(cpus))


def start(
    cmd: list[str], env: dict[str, str], cwd: Path, log: Path, cpus: set[int] | None = None
) -> subprocess.Popen[bytes]:
    with open(log, "wb") as f:
        return subprocess.Popen(
            cmd,
            env=env,
            cwd=cwd,
            stdout=f,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=pinned(cpus),
        )


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


def wrk(
    url: str, lua: Path, duration: int, connections: int, cpus: set[int] | None = None
) -> dict[str, float]:
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency", "-s", str(lua), url],
        capture_output=True,
        text=True,
        check=True,
        preexec_fn=pinned(cpus),
    ).stdout

    def ms(label: str) -> float:
        m = re.search(rf"^\s*{label}\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        if not m:
            return float("nan")
        v, unit = float(m.group(1)), m.group(2)
        return v / 1000 if unit == "us" else v * 1000 if unit == "s" else v

    pct = {float(p): float(v) for p, v in re.findall(r"^PCT ([\d.]+) ([\d.]+)$", out, re.M)}
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors:.*", out)
    return {
        "rps": rps,
        "p50": ms("50%"),
        "p95": pct.get(95.0, float("nan")),
        "p99": ms("99%"),
        "p999": pct.get(99.9, float("nan")),
        "non2xx": float(non2xx.group(1)) if non2xx else 0.0,
        "socket_errors": 1.0 if errors else 0.0,
    }


def group_pids(pgid: int) -> list[int]:
    """Live processes of a process group (server, workers, helpers)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:
            pids.append(int(entry))
    return pids


def group_cpu_seconds(pgid: int) -> float:
    """User + system CPU seconds of every live process in a process group (server, workers, helpers)."""
    total = 0
    for pid in group_pids(pgid):
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def group_affinity(pgid: int) -> str:
    """Distinct CPU sets of a process group's processes and threads, e.g. ``0 (5 processes, 9 threads)``."""
    sets: dict[str, list[int]] = {}
    threads = 0
    for pid in group_pids(pgid):
        try:
            tids = [int(t) for t in os.listdir(f"/proc/{pid}/task")]
            for tid in tids:
                sets.setdefault(fmt_cpus(os.sched_getaffinity(tid)), []).append(pid)
            threads += len(tids)
        except OSError:
            continue
    procs = len({p for ps in sets.values() for p in ps})
    return f"{' | '.join(sorted(sets))} ({procs} processes, {threads} threads)"


def summarize(results: dict[str, list[dict[str, float]]], connections: int) -> None:
    """Print the medians over rounds and the ratios the router issue asks for."""

    def med(label: str, key: str) -> float:
        return statistics.median(r[key] for r in results[label])

    print("\nmedians over rounds:")
    for label in results:
        print(
            f"  {label:<22} {med(label, 'rps'):>8.0f} req/s  p50 {med(label, 'p50'):>6.2f} ms"
            f"  p95 {med(label, 'p95'):>6.2f} ms  p99 {med(label, 'p99'):>7.2f} ms"
            f"  p99.9 {med(label, 'p999'):>7.2f} ms  cpu {med(label, 'cpu_us'):>5.0f} us/req"
        )

    def paired(a: str, b: str, key: str) -> float:
        """Median over rounds of ``a``'s ``key`` over ``b``'s in the same round."""
        return statistics.median(x[key] / y[key] for x, y in zip(results[a], results[b], strict=True))

    rt = med("router", "rps")
    print()
    print(
        "issue 16 bars: router / mlflow models serve >= 12x, router / minimal ASGI app >= 0.8x req/s, "
        f"p99 at {connections} connections router / minimal (per round, median) <= 1.3x"
    )
    rows = [
        ("router", "writer at nice 10: the code's default, the embedded stack's"),
        ("router, idle writer", "ROUTER_EVENTS_WRITER_IDLE=true: deploy/router/deployment.yaml"),
    ]
    for label, what in rows:
        if label not in results:
            continue
        vs_mlflow = (
            f"{med(label, 'rps') / med('mlflow models serve', 'rps'):5.1f}x mlflow, "
            if "mlflow models serve" in results
            else ""
        )
        print(
            f"  {label:<20} {vs_mlflow}{med(label, 'rps') / med('minimal ASGI app', 'rps'):.2f}x minimal, "
            f"p99 {med(label, 'p99'):.2f} ms = {paired(label, 'minimal ASGI app', 'p99'):.2f}x minimal's "
            f"({med('minimal ASGI app', 'p99'):.2f} ms)   [{what}]"
        )
    cost = 1 - paired("router + 10% shadow", "router", "rps")
    print(
        f"10% shadow throughput cost     = {cost * 100:.1f}% (bar <= 10%; median of the rounds' pairs, "
        f"from medians: {(1 - med('router + 10% shadow', 'rps') / rt) * 100:.1f}%)"
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=int, default=8, help="seconds of each measured wrk run")
    ap.add_argument("--warmup", type=int, default=3, help="seconds of wrk before each measured run")
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=3, help="rounds over all servers; medians are reported")
    ap.add_argument("--skip-mlflow", action="store_true")
    ap.add_argument(
        "--router-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra environment of the router runs, e.g. ROUTER_EVENTS_ENABLED=false (repeatable)",
    )
    ap.add_argument(
        "--pin",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="pin servers and wrk to separate CPU sets (default: on when at least 2 CPUs are available)",
    )
    args = ap.parse_args()
    server_cpus, wrk_cpus, pin_note = split_cpus(args.pin)
    if shutil.which("wrk") is None:
        print("wrk is not installed: apt-get install -y wrk", file=sys.stderr)
        return 2
    tmp = Path(tempfile.mkdtemp(prefix="bench-serving-"))
    model = demo_model(tmp / "model.onnx")
    lua = post_lua(tmp / "post.lua")
    env = dict(os.environ)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    results: dict[str, list[dict[str, float]]] = {}
    servers: list[tuple[str, list[str], str, str, Path, dict[str, str]]] = []

    if not args.skip_mlflow:
        import mlflow.onnx
        import onnx

        # The same onnxruntime session options as the router and the minimal app (1 intra-op, 1 inter-op
        # thread, sequential). With mlflow's default (no options: an intra-op pool sized to the cores,
        # whose threads onnxruntime gives their own CPU affinity) the pinned mlflow server had threads
        # on both CPUs (affinity line "0 | 1"); with these options all its threads stay on the server set.
        mlflow.onnx.save_model(
            onnx.load(str(model)),
            str(tmp / "mlflow-model"),
            onnx_execution_providers=["CPUExecutionProvider"],
            onnx_session_options={
                "intra_op_num_threads": 1,
                "inter_op_num_threads": 1,
                "execution_mode": "sequential",
            },
        )
        servers.append(
            (
                "mlflow models serve",
                [
                    str(BIN / "mlflow"),
                    *("models", "serve", "-m", str(tmp / "mlflow-model"), "--env-manager", "local"),
                    *("-h", "127.0.0.1", "-p", "{port}", "-w", "1"),
                ],
                "/ping",
                "/invocations",
                REPO,
                {},
            )
        )
    (tmp / "minimal_app.py").write_text(MINIMAL_APP)
    servers.append(
        (
            "minimal ASGI app",
            uvicorn_cmd("minimal_app:app"),
            "/",
            "/",
            tmp,
            {"BENCH_MODEL": str(model)},
        )
    )
    router_env = dict(kv.split("=", 1) for kv in args.router_env)
    for label, shadow in (("router", None), ("router + 10% shadow", 10)):
        routes = routes_file(tmp / f"routes-{shadow}.yaml", model, shadow)
        servers.append(
            (
                label,
                router_cmd(routes, tmp / f"state-{shadow}", tmp / f"events-{shadow}"),
                "/v2/health/ready",
                "/invocations",
                REPO / "serving_images" / "router",
                router_env,
            )
        )

    idle_env = {**router_env, "ROUTER_EVENTS_WRITER_IDLE": "true"}
    servers.insert(
        len(servers) - 2,
        (
            "router, idle writer",
            router_cmd(
                routes_file(tmp / "routes-idle.yaml", model, None), tmp / "state-idle", tmp / "events-idle"
            ),
            "/v2/health/ready",
            "/invocations",
            REPO / "serving_images" / "router",
            idle_env,
        ),
    )
    affinity_shown: set[str] = set()
    event_checks: list[str] = []

    def run(label: str, cmd: list[str], health: str, path: str, cwd: Path, extra: dict[str, str]) -> None:
        """Start one server alone, warm it up, measure it, stop it."""
        port = free_port()
        cmd = [c.replace("{port}", str(port)) for c in cmd]
        if "--events-root" in cmd:  # each run's event files are counted against that run's requests
            shutil.rmtree(cmd[cmd.index("--events-root") + 1], ignore_errors=True)
        proc = start(cmd, {**env, **extra}, cwd, tmp / f"{label}.log", server_cpus)
        try:
            wait(f"http://127.0.0.1:{port}{health}", proc)
            url = f"http://127.0.0.1:{port}{path}"
            wrk(url, lua, args.warmup, args.connections, wrk_cpus)
            if label not in affinity_shown:
                # after the warm-up, so that processes started on the first requests (event writer) show
                affinity_shown.add(label)
                print(f"  {label:<22} runs on CPU {group_affinity(proc.pid)}", flush=True)
            router = label.startswith("router")
            base = f"http://127.0.0.1:{port}"
            if router:  # the warm-up's events are written before the window opens
                drained(base)
            load = os.getloadavg()[0]
            cpu0 = group_cpu_seconds(proc.pid)
            r = wrk(url, lua, args.duration, args.connections, wrk_cpus)
            answered = max(r["rps"] * args.duration, 1)
            r["cpu_us"] = (group_cpu_seconds(proc.pid) - cpu0) / answered * 1e6
            r["load"] = load
            if router:
                r.update(after_window(base, proc.pid, cpu0, answered))
        finally:
            stop(proc)
        extra_line = events_line(cmd, r, event_checks) if router else ""
        results.setdefault(label, []).append(r)
        print(
            f"  {label:<22} {r['rps']:>8.0f} req/s  p50 {r['p50']:>6.2f} ms  p95 {r['p95']:>6.2f} ms"
            f"  p99 {r['p99']:>7.2f} ms  p99.9 {r['p999']:>7.2f} ms"
            f"  cpu {r['cpu_us']:>5.0f} us/req  non-2xx {r['non2xx']:.0f}  (load {load:.2f}){extra_line}",
            flush=True,
        )

    print(
        f"{len(servers)} servers, {args.rounds} rounds, one at a time; wrk -t1 -c{args.connections} "
        f"-d{args.duration}s --latency after a {args.warmup} s warm-up; {os.cpu_count()} cpus; "
        f"load average before: {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    print(pin_note, flush=True)
    print(f"router environment: {router_env or 'defaults'}", flush=True)
    for i in range(args.rounds):
        print(f"round {i + 1}", flush=True)
        order = list(servers)
        if i % 2:  # the two router runs swap places every other round: drift over a round hits both alike
            order[-2:] = order[-1:-3:-1]
        for server in order:
            run(*server)

    summarize(results, args.connections)
    bad = [c for c in event_checks if c != "ok"]
    print(
        f"event files == scored requests after {len(event_checks)} router runs: {'yes' if not bad else 'NO'}"
    )
    print(
        f"({pin_note}; load average after: {os.getloadavg()[0]:.2f}; cpu us/req = CPU of the server's process group "
        f"per answered request; files in {tmp})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
