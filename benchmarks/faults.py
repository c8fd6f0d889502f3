"""Fault harness: the router under load while what it depends on fails, and what was lost.

Each scenario starts a real router (``python -m router``) with the demo-sized model, drives it with
16 keep-alive client threads (each request has its own ``X-Request-Id``), injects one fault, stops the
router with SIGTERM and reads every event file. One line per scenario:

    scenario  sent  answered  failed  events  dropped  duplicates  exit

``sent``: requests written to a connection (a connect refused after the listener closed is not sent);
``failed``: sent requests without a 200; ``events``: primary event records on disk; ``dropped``: the
records the router counted as dropped (its shutdown log line); ``duplicates``: records whose request
id is in the files more than once. Nothing is lost when failed == 0, events + dropped == answered
and duplicates == 0.

Scenarios: ``sigterm`` (drain with a grace period), ``writer-kill`` (the event writer gets kill -9
twice under load), ``sink-down`` (the event directory cannot be created for a while, then can),
``sink-down-cap`` (the same with a buffer cap of 300 records: drops are counted), ``bad-swap`` (a
routes change to a model file that fails to load, under load). Registry faults are not covered here
(see ``docs/router.md``).

Usage: ``.venv/bin/python benchmarks/faults.py [--seconds 4] [--scenario NAME ...]``
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script: the repository root
from benchmarks.serving import BIN, REPO, demo_model, free_port, wait

ROUTER_DIR = REPO / "serving_images" / "router"
TOKEN = "faults-admin-token"
ROW = [round((i % 7) / 7 - 0.4, 4) for i in range(30)]


@dataclass
class Outcome:
    """What one scenario sent, what came back, and what the event files hold."""

    scenario: str
    sent: int
    answered: int
    failed: int
    events: int
    dropped: int
    duplicates: int
    exit_code: int

    @property
    def lost(self) -> int:
        """Answered requests with neither an event record nor a counted drop."""
        return self.answered - self.events - self.dropped

    def line(self) -> str:
        """The printed line."""
        return (
            f"{self.scenario:<14} {self.sent:>7} {self.answered:>9} {self.failed:>7} {self.events:>7} "
            f"{self.dropped:>8} {self.duplicates:>11} {self.exit_code:>5}"
        )


HEADER = f"{'scenario':<14} {'sent':>7} {'answered':>9} {'failed':>7} {'events':>7} {'dropped':>8} {'duplicates':>11} {'exit':>5}"


class Load:
    """Keep-alive client threads posting until stopped; outcomes by request id."""

    def __init__(self, url: str, threads: int = 16) -> None:
        self.url = url
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.answered = 0
        self.failed: list[str] = []
        self.refused = 0
        self.threads = [threading.Thread(target=self._run, args=(i,)) for i in range(threads)]

    def _run(self, i: int) -> None:
        import httpx

        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        with httpx.Client(base_url=self.url, timeout=30, limits=limits) as c:
            n = 0
            while not self.stop.is_set():
                n += 1
                try:
                    r = c.post("/invocations", json={"inputs": [ROW]}, headers={"X-Request-Id": f"t{i}-{n}"})
                    outcome = "ok" if r.status_code == 200 else f"HTTP {r.status_code}"
                except httpx.ConnectError:  # refused: never sent
                    with self.lock:
                        self.refused += 1
                    time.sleep(0.05)
                    continue
                except httpx.HTTPError as e:
                    outcome = type(e).__name__
                with self.lock:
                    if outcome == "ok":
                        self.answered += 1
                    else:
                        self.failed.append(outcome)

    def __enter__(self) -> Load:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(60)


class Router:
    """A router process with the demo model."""

    def __init__(self, tmp: Path, env: dict[str, str]) -> None:
        self.tmp = tmp
        tmp.mkdir(parents=True, exist_ok=True)
        self.model = demo_model(tmp / "model.onnx")
        self.routes = tmp / "routes.yaml"
        self.routes.write_text(
            f"models:\n  demo:\n    variants:\n      - {{name: champion, uri: {self.model}, weight_bp: 10000}}\n"
        )
        self.events = tmp / "events"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tmp / "router.log"
        full = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(ROUTER_DIR), str(REPO)]),
            "ROUTER_ADMIN_TOKEN": TOKEN,
            "ROUTER_STATE_DIR": str(tmp / "state"),
            "ROUTER_EVENTS_ROOT": str(self.events),
            "ROUTER_EVENTS_FLUSH_SECONDS": "0.5",
            "ROUTER_SHUTDOWN_GRACE_SECONDS": "0",
            "ROUTER_LOG_LEVEL": "info",
            **env,
        }
        cmd = [str(BIN / "python"), "-m", "router", "--routes", str(self.routes), "--port", str(self.port)]
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                cmd, cwd=ROUTER_DIR, env=full, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        wait(f"{self.url}/v2/health/ready", self.proc, timeout=120)

    def writer_pids(self) -> list[int]:
        """Pids of the router's event writer processes."""
        pids = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if ppid == self.proc.pid and b"router.eventwriter" in cmdline:
                pids.append(int(entry.name))
        return pids

    def terminate(self) -> int:
        """SIGTERM, wait for the exit, return its code."""
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            return self.proc.wait(120)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            return self.proc.wait(10)

    def dropped(self) -> int:
        """Records the router counted as dropped (its shutdown line)."""
        m = re.findall(r"events flushed: (\d+) written, (\d+) dropped", self.log.read_text(errors="replace"))
        return int(m[-1][1]) if m else -1

    def event_ids(self) -> list[str]:
        """Request ids of the primary records in the event files."""
        import pyarrow.parquet as pq

        ids: list[str] = []
        roots = [d for d in (self.events, self.tmp / "events-before") if d.is_dir()]
        for f in sorted(f for d in roots for f in d.rglob("*.parquet")):
            t = pq.read_table(f, columns=["request_id", "shadow"])
            ids += [
                r
                for r, s in zip(
                    t.column("request_id").to_pylist(), t.column("shadow").to_pylist(), strict=True
                )
                if not s
            ]
        return ids


def _run(
    name: str, tmp: Path, env: dict[str, str], fault: Callable[[Router, float], None], seconds: float
) -> Outcome:
    r = Router(tmp / name, env)
    try:
        with Load(r.url) as load:
            time.sleep(0.5)
            fault(r, seconds)
            if name == "sigterm":  # the clients keep posting through the drain
                code = r.terminate()
            else:
                time.sleep(0.5)
        if name != "sigterm":
            code = r.terminate()
    finally:
        if r.proc.poll() is None:
            os.killpg(r.proc.pid, signal.SIGKILL)
    ids = r.event_ids()
    return Outcome(
        name,
        load.answered + len(load.failed),
        load.answered,
        len(load.failed),
        len(ids),
        r.dropped(),
        len(ids) - len(set(ids)),
        code,
    )


def _sigterm(r: Router, seconds: float) -> None:
    time.sleep(seconds)


def _writer_kill(r: Router, seconds: float) -> None:
    for _ in range(2):
        time.sleep(seconds / 2)
        for pid in r.writer_pids():
            os.kill(pid, signal.SIGKILL)


def _sink_down(r: Router, seconds: float) -> None:
    if r.events.exists():  # files written before the fault move aside (and still count)
        r.events.rename(r.tmp / "events-before")
    r.events.write_text("a file where the event directory should be")  # every write fails
    time.sleep(seconds)
    r.events.unlink()  # the sink returns
    time.sleep(1.5)


def _bad_swap(r: Router, seconds: float) -> None:
    import httpx

    bad = r.tmp / "broken.onnx"
    bad.write_bytes(b"not an onnx model")
    routes = {
        "variants": [
            {"name": "champion", "uri": str(r.model), "weight_bp": 9000},
            {"name": "canary", "uri": str(bad), "weight_bp": 1000},
        ]
    }
    with httpx.Client(base_url=r.url, timeout=60, headers={"Authorization": f"Bearer {TOKEN}"}) as a:
        for _ in range(3):
            time.sleep(seconds / 3)
            resp = a.put("/admin/models/demo/routes", json=routes)
            if resp.status_code != 400:
                raise RuntimeError(
                    f"a routes change to a broken model was answered {resp.status_code}: {resp.text}"
                )


SCENARIOS: dict[str, tuple[dict[str, str], Callable[[Router, float], None]]] = {
    "sigterm": ({"ROUTER_SHUTDOWN_GRACE_SECONDS": "1.5"}, _sigterm),
    "writer-kill": ({"ROUTER_EVENTS_FLUSH_SECONDS": "2"}, _writer_kill),
    "sink-down": ({"ROUTER_EVENTS_FLUSH_SECONDS": "0.3"}, _sink_down),
    "sink-down-cap": ({"ROUTER_EVENTS_FLUSH_SECONDS": "0.3", "ROUTER_EVENTS_MAX_BUFFER": "300"}, _sink_down),
    "bad-swap": ({}, _bad_swap),
}


def run(names: list[str], seconds: float, tmp: Path) -> list[Outcome]:
    """Run scenarios one after another.

    Args:
        names: scenario names (keys of ``SCENARIOS``).
        seconds: seconds of load around each fault.
        tmp: working directory.

    Returns:
        One outcome per scenario.
    """
    out = []
    for name in names:
        env, fault = SCENARIOS[name]
        out.append(_run(name, tmp, env, fault, seconds))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=4.0, help="seconds of load around each fault")
    ap.add_argument("--scenario", action="append", choices=sorted(SCENARIOS), help="run only these")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-faults-"))
    print(HEADER, flush=True)
    bad = 0
    for o in run(args.scenario or list(SCENARIOS), args.seconds, tmp):
        print(o.line(), flush=True)
        bad += o.failed > 0 or o.lost != 0 or o.duplicates > 0 or o.exit_code != 0
    print(f"(lost = answered - events - dropped; files in {tmp})")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
