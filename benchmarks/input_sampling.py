"""Instructions per request of the router with sampled input logging on (0.01) and off, under callgrind.

Every request carries ``X-Consent: true`` (only consenting units are sampled), so the sampling decision
runs on every request. Two rounds, alternating the settings; prints each run and the ratio of the sums
(bar of issue 15: within 3 %). Uses ``benchmarks/instructions.py``'s measurement (counters zeroed, idle
rate subtracted). Needs valgrind and wrk.

Usage: ``.venv/bin/python benchmarks/input_sampling.py [--duration 12]``
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script: the repository root
from benchmarks.instructions import measure
from benchmarks.serving import BIN, REPO, demo_model, post_lua, router_cmd, routes_file


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=int, default=12, help="seconds of measured load per run")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-input-sampling-"))
    model = demo_model(tmp / "model.onnx")
    lua = post_lua(tmp / "post.lua")
    consent = 'wrk.headers["Content-Type"] = "application/json"\nwrk.headers["X-Consent"] = "true"'
    lua.write_text(lua.read_text().replace('wrk.headers["Content-Type"] = "application/json"', consent))
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    sums = {"0.01": 0.0, "0": 0.0}
    for i, p in enumerate(["0.01", "0", "0.01", "0"]):
        routes = routes_file(tmp / f"routes-{i}.yaml", model, None)
        cmd = router_cmd(routes, tmp / f"state-{i}", tmp / f"events-{i}")
        total, n, _ = measure(
            f"sample-{i}",
            cmd,
            {**env, "ROUTER_EVENTS_INPUT_SAMPLE": p},
            REPO / "serving_images" / "router",
            "/v2/health/ready",
            "/invocations",
            tmp,
            args,
        )
        sums[p] += total / n
        print(
            f"ROUTER_EVENTS_INPUT_SAMPLE={p:<5} {total / n / 1000:8.1f}k instructions / request ({n} requests)"
        )
    print(
        f"sampling 0.01 vs off: {(sums['0.01'] / sums['0'] - 1) * 100:+.2f}% instructions per request (bar: 3%)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
