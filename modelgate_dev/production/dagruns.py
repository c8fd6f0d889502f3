"""Exporter of Airflow's DAG runs for Prometheus: ``modelgate_dag_runs{dag_id, state}``.

Airflow publishes its own metrics through StatsD, which needs the ``statsd`` package and a StatsD
exporter (neither is in the lock). This small process reads Airflow's REST API instead, as a read-only
identity (the native profile's ``monitor`` user has SimpleAuthManager's ``viewer`` role), and exposes,
for every DAG Airflow knows, the number of its runs in each watched state (default: ``failed``). Every
DAG has a series from the first read, at 0 until a run fails, so the ``AirflowDagRunFailed`` alert
(``delta(modelgate_dag_runs{state="failed"}[15m]) > 0``) sees a DAG's first failure too.

Run it with ``python -m modelgate_dev.production.dagruns --airflow URL --username monitor
--password-file FILE --port PORT``; it reads every ``--interval`` seconds in a background thread and
answers ``/metrics`` from the last read (``modelgate_dag_runs_read_ok`` is 0 while reads fail).
"""

from __future__ import annotations

import argparse
import logging
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from prometheus_client import start_http_server
from prometheus_client.core import REGISTRY, GaugeMetricFamily
from prometheus_client.registry import Collector

from modelgate_dev.cli import AirflowClient, CliError

log = logging.getLogger(__name__)

PAGE = 100
"""Runs (or DAGs) per REST call."""


def _pages(client: AirflowClient, path: str, key: str, params: dict[str, Any]) -> Iterator[dict[str, Any]]:
    offset = 0
    while True:
        page = client.get(path, params={**params, "limit": PAGE, "offset": offset})
        items = page.get(key, [])
        yield from items
        offset += len(items)
        if not items or offset >= int(page.get("total_entries", 0)):
            return


def read_counts(client: AirflowClient, states: Iterable[str]) -> dict[tuple[str, str], int]:
    """Count the runs of every DAG in each state, through Airflow's REST API.

    Args:
        client: a client logged in with (at least) read access to DAGs and their runs.
        states: the run states to count.

    Returns:
        ``(dag_id, state) -> runs``, with 0 for every DAG Airflow knows and has no such run of.
    """
    states = tuple(states)
    counts = {(d["dag_id"], s): 0 for d in _pages(client, "/api/v2/dags", "dags", {}) for s in states}
    for state in states:
        for run in _pages(client, "/api/v2/dags/~/dagRuns", "dag_runs", {"state": state}):
            key = (run["dag_id"], state)
            counts[key] = counts.get(key, 0) + 1
    return counts


class DagRunExporter(Collector):
    """Keeps the last counts read from Airflow (a background thread reads them) and collects them.

    Args:
        connect: returns a logged-in client (called again after a failed read: the token may have expired).
        states: the run states to count.
    """

    def __init__(self, connect: Any, states: Iterable[str] = ("failed",)) -> None:
        self._connect = connect
        self.states = tuple(states)
        self.counts: dict[tuple[str, str], int] = {}
        self.ok = False
        self.read_at = 0.0
        self._client: AirflowClient | None = None
        self._lock = threading.Lock()

    def read(self) -> bool:
        """Read the counts once; keep the previous ones when the read fails. Returns whether it succeeded."""
        try:
            if self._client is None:
                self._client = self._connect()
            counts = read_counts(self._client, self.states)
        except (CliError, OSError, KeyError, ValueError) as e:
            log.warning("reading DAG runs from Airflow failed: %s", e)
            self._client = None
            with self._lock:
                self.ok = False
            return False
        with self._lock:
            self.counts, self.ok, self.read_at = counts, True, time.time()
        return True

    def run_forever(self, interval: float, stop: threading.Event) -> None:
        """Read every ``interval`` seconds until ``stop`` is set."""
        while not stop.is_set():
            self.read()
            stop.wait(interval)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        with self._lock:
            counts, ok, read_at = dict(self.counts), self.ok, self.read_at
        runs = GaugeMetricFamily(
            "modelgate_dag_runs",
            "DAG runs per DAG and state, read from Airflow's REST API.",
            labels=["dag_id", "state"],
        )
        for (dag_id, state), n in sorted(counts.items()):
            runs.add_metric([dag_id, state], n)
        yield runs
        yield GaugeMetricFamily(
            "modelgate_dag_runs_read_ok",
            "1 when the last read of Airflow's REST API succeeded, else 0.",
            value=int(ok),
        )
        yield GaugeMetricFamily(
            "modelgate_dag_runs_read_timestamp_seconds", "Time of the last successful read.", value=read_at
        )


def main(argv: list[str] | None = None) -> int:
    """Serve ``/metrics`` on 127.0.0.1 (or ``--host``) until killed."""
    p = argparse.ArgumentParser(
        prog="python -m modelgate_dev.production.dagruns", description=__doc__.split("\n")[0]
    )
    p.add_argument("--airflow", required=True, help="Airflow API server URL")
    p.add_argument("--username", required=True, help="a read-only Airflow user")
    p.add_argument("--password-file", required=True, type=Path, help="file holding its password")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--interval", type=float, default=15.0, help="seconds between reads")
    p.add_argument(
        "--state", action="append", dest="states", help="run state to count (repeatable; default failed)"
    )
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # not a line per read
    try:
        password = args.password_file.read_text().strip()
    except OSError as e:
        sys.stderr.write(f"error: cannot read the password file {args.password_file}: {e}\n")
        return 2

    def connect() -> AirflowClient:
        return AirflowClient(args.airflow, args.username, password, timeout=30.0, attempts=2)

    exporter = DagRunExporter(connect, args.states or ("failed",))
    REGISTRY.register(exporter)
    stop = threading.Event()
    threading.Thread(target=exporter.run_forever, args=(args.interval, stop), daemon=True).start()
    start_http_server(args.port, addr=args.host)
    log.info("serving modelgate_dag_runs on http://%s:%d/metrics", args.host, args.port)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        stop.set()
    return 0


if __name__ == "__main__":
    sys.exit(main())
