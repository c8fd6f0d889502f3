"""Convergence of router replicas on one routes store: seconds from a change's answer until every replica
serves its generation.

Starts ``--replicas`` real router processes (default 3) on one SQLite store (WAL), makes ``--changes``
route changes (default 30), each sent to the next replica in turn (weights move, so every change is a
new generation), and polls every replica's ``/v2/health/ready`` (``generation``) every 10 ms until all
report the change's generation. Prints p50, p99 and max in seconds. The poll interval of the replicas is
``--poll`` (default 0.5 s, the router's default). Optional steady load (``--load-threads``) keeps the
replicas busy while they converge.

Usage: ``.venv/bin/python benchmarks/convergence.py [--replicas 3] [--changes 30] [--poll 0.5]``
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script: the repository root
from benchmarks.serving import BIN, REPO, demo_model, free_port, routes_file, start, stop, wait

ROUTER_DIR = REPO / "serving_images" / "router"
TOKEN = "convergence-admin-token"
ROW = [round((i % 7) / 7 - 0.4, 4) for i in range(30)]


def _load(urls: list[str], stop_evt: threading.Event, counts: list[int]) -> None:
    import httpx

    with httpx.Client(timeout=30) as c:
        i = 0
        while not stop_evt.is_set():
            url = urls[i % len(urls)]
            i += 1
            r = c.post(f"{url}/invocations", json={"inputs": [ROW]})
            counts[0 if r.status_code == 200 else 1] += 1


def run(replicas: int, changes: int, poll: float, load_threads: int, tmp: Path) -> list[float]:
    """Start the replicas, make the changes, return each change's convergence time in seconds."""
    import httpx

    model = demo_model(tmp / "demo.onnx")
    routes = routes_file(tmp / "routes.yaml", model, None)
    store = f"sqlite:///{tmp / 'control.db'}"
    procs, urls = [], []
    for i in range(replicas):
        port = free_port()
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(ROUTER_DIR), str(REPO)]),
            "ROUTER_ADMIN_TOKEN": TOKEN,
            "ROUTER_STORE_URL": store,
            "ROUTER_STORE_POLL_SECONDS": str(poll),
            "ROUTER_AUDIT_KEY_FILE": str(tmp / "secrets" / "audit-hmac.key"),
            "ROUTER_SHUTDOWN_GRACE_SECONDS": "0",
        }
        cmd = [str(BIN / "python"), "-m", "router", "--routes", str(routes), "--port", str(port),
               "--log-level", "warning", "--state-dir", str(tmp / f"state{i}"), "--events-root", str(tmp / "events")]
        procs.append(start(cmd, env, ROUTER_DIR, tmp / f"router{i}.log"))
        urls.append(f"http://127.0.0.1:{port}")
    stop_evt = threading.Event()
    counts = [0, 0]
    loaders = [threading.Thread(target=_load, args=(urls, stop_evt, counts)) for _ in range(load_threads)]
    times: list[float] = []
    try:
        for url, proc in zip(urls, procs, strict=True):
            wait(f"{url}/v2/health/ready", proc)
        for t in loaders:
            t.start()
        with httpx.Client(timeout=30, headers={"Authorization": f"Bearer {TOKEN}"}) as admin, \
                httpx.Client(timeout=10) as probe:
            for k in range(changes):
                canary = 100 * (k % 50 + 1)
                doc = {"salt": "bench", "variants": [
                    {"name": "champion", "uri": str(model), "weight_bp": 10000 - canary},
                    {"name": "canary", "uri": str(model), "weight_bp": canary},
                ]}
                r = admin.put(f"{urls[k % replicas]}/admin/models/demo/routes", json=doc)
                r.raise_for_status()
                t0 = time.monotonic()
                gen = r.json()["generation"]
                pending = set(urls)
                while pending:
                    pending = {u for u in pending if probe.get(f"{u}/v2/health/ready").json()["generation"] < gen}
                    if pending:
                        if time.monotonic() - t0 > 60:
                            raise RuntimeError(f"change {k}: {sorted(pending)} not at generation {gen} in 60 s")
                        time.sleep(0.01)
                times.append(time.monotonic() - t0)
                time.sleep(0.05)
    finally:
        stop_evt.set()
        for t in loaders:
            if t.is_alive():
                t.join(30)
        for p in procs:
            stop(p)
    if load_threads and counts[1]:
        raise RuntimeError(f"{counts[1]} requests failed during the changes")
    return times


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--replicas", type=int, default=3)
    ap.add_argument("--changes", type=int, default=30)
    ap.add_argument("--poll", type=float, default=0.5, help="ROUTER_STORE_POLL_SECONDS of the replicas")
    ap.add_argument("--load-threads", type=int, default=2, help="client threads sending requests meanwhile")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="modelgate-convergence-") as d:
        times = sorted(run(args.replicas, args.changes, args.poll, args.load_threads, Path(d)))
    p99 = times[math.ceil(0.99 * len(times)) - 1]  # nearest rank (with 30 changes: the largest)
    print(f"replicas {args.replicas}, changes {len(times)}, poll {args.poll} s, load threads {args.load_threads}, "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"convergence seconds: p50 {statistics.median(times):.3f}  p99 {p99:.3f}  max {times[-1]:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
