"""Instructions per request under callgrind: router, router + 10 % shadow, minimal app. Not wall time.

Wall-time throughput on this machine moves by up to 2x between runs a minute apart (see
``benchmarks/tail.py``), which hides a 10 % difference such as the cost of a 10 % shadow. Instruction
counts do not move with the machine. Each server runs alone under ``valgrind --tool=callgrind`` and
gets a warm-up of ``wrk``. Its counters are zeroed, it sits idle for ``--duration`` seconds and is
dumped: that is its idle rate (timers, the event sender's ticks). Then it takes ``--duration`` seconds
of load (``wrk -c4``), is given a few seconds to drain (shadow queue, hand-off of events) and is dumped
again. The count is every instruction of every thread of the serving process (the shadow thread and
the event sender thread included) under load, less the idle rate over the same time, divided by the
requests answered: the cost of a request, whatever the requests per second under callgrind.

Not counted: the router's event writer process. Under callgrind the router answers about 200 requests
a second, so the writer's fixed cost per Parquet file would be spread over a few hundred records
instead of the 20,000 of a real flush, and would swamp the count; its cost per record is measured in
``docs/events.md`` (about 4 µs). Instructions are not time either: cache misses, system calls and the
kernel's network path are not in them. They are the part of the cost the server's own code decides,
measured exactly.

Needs valgrind (Debian package ``valgrind``). Usage:
``.venv/bin/python benchmarks/instructions.py [--duration 15]``
"""

from __future__ import annotations

import argparse
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script: the repository root
from benchmarks.serving import (
    BIN,
    MINIMAL_APP,
    REPO,
    demo_model,
    free_port,
    post_lua,
    router_cmd,
    routes_file,
    start,
    stop,
    uvicorn_cmd,
    wait,
)


def requests_of(wrk_out: str) -> int:
    m = re.search(r"(\d+) requests in", wrk_out)
    if not m:
        raise RuntimeError(f"no request count in wrk output: {wrk_out[-500:]}")
    return int(m.group(1))


def dumped_instructions(prefix: Path, before: set[str], timeout: float = 120) -> int:
    """Sum the instruction totals of the dump files that appeared since ``before``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        new = sorted(set(glob.glob(f"{prefix}*")) - before)
        totals = []
        for path in new:
            text = Path(path).read_text(errors="replace")
            m = re.search(r"^(?:totals|summary):\s+(\d+)", text, re.M)
            if m:
                totals.append(int(m.group(1)))
        if new and len(totals) == len(new):
            return sum(totals)
        time.sleep(0.5)
    raise TimeoutError("callgrind dump files did not appear")


def measure(
    label: str,
    cmd: list[str],
    env: dict[str, str],
    cwd: Path,
    health: str,
    path: str,
    tmp: Path,
    args: argparse.Namespace,
) -> tuple[float, int, float]:
    """Run one server under callgrind.

    Returns:
        Instructions under load less the idle rate over the same time, requests answered, and the idle
        rate (instructions a second).
    """
    port = free_port()
    prefix = tmp / f"cg-{label.replace(' ', '_').replace('%', '')}"
    vg = ["valgrind", "--tool=callgrind", "--trace-children=no", f"--callgrind-out-file={prefix}.%p"]
    proc = start([*vg, *(c.replace("{port}", str(port)) for c in cmd)], env, cwd, tmp / f"{label}.log")
    lua = tmp / "post.lua"

    def dump() -> int:
        """Dump the counters and return the instructions since they were last zeroed."""
        before = set(glob.glob(f"{prefix}*"))
        subprocess.run(["callgrind_control", "-d"], capture_output=True, check=True)
        return dumped_instructions(prefix, before)

    def zero() -> float:
        subprocess.run(["callgrind_control", "-z"], capture_output=True, check=True)
        return time.monotonic()

    try:
        wait(f"http://127.0.0.1:{port}{health}", proc, timeout=900)
        url = f"http://127.0.0.1:{port}{path}"
        subprocess.run(["wrk", "-t1", "-c4", "-d5s", "-s", str(lua), url], capture_output=True, check=True)
        time.sleep(2)
        t0 = zero()
        time.sleep(args.duration)
        idle_s = time.monotonic() - t0
        idle = dump()
        t0 = zero()
        out = subprocess.run(
            ["wrk", "-t1", "-c4", f"-d{args.duration}s", "-s", str(lua), url],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        time.sleep(2)  # shadow queue drained, events handed to the writer
        loaded_s = time.monotonic() - t0
        loaded = dump()
    finally:
        stop(proc)
    n = requests_of(out)
    rate = idle / idle_s
    return loaded - rate * loaded_s, n, rate


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=int, default=15, help="seconds of measured load per server")
    args = ap.parse_args()
    for tool in ("valgrind", "callgrind_control", "wrk"):
        if shutil.which(tool) is None:
            print(f"{tool} is not installed (Debian packages valgrind, wrk)", file=sys.stderr)
            return 2
    tmp = Path(tempfile.mkdtemp(prefix="bench-instructions-"))
    model = demo_model(tmp / "model.onnx")
    post_lua(tmp / "post.lua")
    (tmp / "minimal_app.py").write_text(MINIMAL_APP)
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    servers = [
        (
            "minimal ASGI app",
            uvicorn_cmd("minimal_app:app"),
            {**env, "BENCH_MODEL": str(model)},
            tmp,
            "/",
            "/",
        )
    ]
    for label, shadow in (("router", None), ("router + 10% shadow", 10)):
        routes = routes_file(tmp / f"routes-{shadow}.yaml", model, shadow)
        servers.append(
            (
                label,
                router_cmd(routes, tmp / f"state-{shadow}", tmp / f"events-{shadow}"),
                env,
                REPO / "serving_images" / "router",
                "/v2/health/ready",
                "/invocations",
            )
        )
    print(f"callgrind, wrk -t1 -c4 -d{args.duration}s after a 5 s warm-up, one server at a time", flush=True)
    per: dict[str, float] = {}
    for label, cmd, senv, cwd, health, path in servers:
        total, n, idle = measure(label, cmd, senv, cwd, health, path, tmp, args)
        per[label] = total / n
        print(
            f"  {label:<22} {total / n / 1000:>7.0f}k instructions / request"
            f"  ({total / 1e9:.2f}G over {n} requests; idle: {idle / 1e6:.1f}M a second, subtracted)",
            flush=True,
        )
    print()
    print(f"router / minimal ASGI app (instructions)   = {per['router'] / per['minimal ASGI app']:.2f}x")
    extra = per["router + 10% shadow"] / per["router"] - 1
    print(f"10% shadow: extra instructions per request = {extra * 100:.1f}% (throughput bar: cost <= 10%)")
    print(f"(files in {tmp})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
