"""A/B analysis of router events on DuckDB and Spark against merely reading the same Parquet files.

Generates (once, kept under ``.local/bench/abtest/<events>/``) prediction events in the router's
layout and schema with unit-keyed outcomes and pre-period covariates
(``modelgate_dev.abtest.generate``), then, side by side in one run, each stage in a fresh
subprocess so that its peak memory is its own:

- ``read-all``: ``pyarrow.dataset`` reads every column of every event file into memory;
- ``read-projected``: the same scan, only the columns the analysis reads, no filter;
- ``analyse-duckdb``: the full analysis with ``MODELGATE_ANALYTICS_ENGINE=duckdb`` (SQL reduction
  with filters, per-unit aggregation, outcome and covariate joins, per-variant and per-day sums;
  then statistics, tests, cumulative series, decision);
- ``analyse-spark``: the same on Spark in local mode (the JVM start is outside the timed part).

Each stage runs ``--repeat`` times (default 3, interleaved) and the median is used. Prints
the times, the ratios of each analysis to read-all and read-projected (bar for DuckDB:
<= 2x read-projected), and peak RSS per stage (bar for DuckDB at 100M events: <= 1 GiB); beside
each wall time the stage's CPU time (user + system) and its user CPU time: on a loaded machine the
read's system time (page faults of the materialised columns) varies 3x between runs.
Run: ``.venv/bin/python benchmarks/abtest.py [--events 10000000] [--stages read-projected,analyse-duckdb]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
START = datetime(2026, 12, 1, tzinfo=UTC)
DAYS = 7
EVENTS_PER_UNIT = 5.0

EXPERIMENT = {
    "id": "bench",
    "model": "churn",
    "variants": [{"name": "v1", "weight": 1, "model_version": "1"}, {"name": "v2", "weight": 1, "model_version": "2"}],
    "start": START.isoformat(),
    "max_duration_days": DAYS,
    "mde": 0.02,
    "min_sample": 1000,
    "primary": {"name": "conversion", "type": "proportion", "column": "converted"},
    "secondary": [{"name": "revenue", "type": "mean", "column": "revenue"}],
    "guardrails": [
        {"name": "latency", "type": "ratio", "source": "events", "numerator": "latency_ms",
         "denominator": "requests", "direction": "decrease"},
    ],
    "outcomes": {"path": "outcomes.parquet"},
    "cuped": {"path": "covariates.parquet", "column": "pre_conversions"},
}  # fmt: skip

_STAGE = r"""
import json, resource, sys, time
sys.path.insert(0, %(repo)r)
stage, root = sys.argv[1], sys.argv[2]
import os
import pyarrow as pa, pyarrow.dataset as ds
from datetime import datetime
from include.abtest.analysis import analyse_experiment  # imports outside the timed part, as pyarrow's
from include.abtest.experiment import parse_experiment
if stage.startswith("analyse-"):
    os.environ["MODELGATE_ANALYTICS_ENGINE"] = stage.removeprefix("analyse-")
    import duckdb  # noqa: F401
    if stage == "analyse-spark":
        from include.analytics.spark import session
        session(os.environ.get("MODELGATE_SPARK_MASTER", "local[2]")).sql("SELECT 1").collect()  # JVM up
t = time.perf_counter()
c0 = resource.getrusage(resource.RUSAGE_SELF)
rows = 0
if stage == "read-all":
    rows = ds.dataset(root + "/events", format="parquet", partitioning="hive").to_table().num_rows
elif stage == "read-projected":
    cols = ["ts", "model", "variant", "consent", "shadow", "unit_id", "latency_ms"]
    rows = ds.dataset(root + "/events", format="parquet", partitioning="hive").to_table(columns=cols).num_rows
else:
    exp = parse_experiment(json.loads(sys.argv[3]))
    res = analyse_experiment(exp, root + "/events", root, as_of=datetime.fromisoformat(sys.argv[4]))
    rows = res["counts"]["events"]
    c = res["metrics"][0]["comparisons"][0]
    print("ANALYSIS " + json.dumps({"engine": res["engine"], "decision": res["decision"]["decision"],
          "effect": c["effect"], "ci": c["ci"], "units": res["counts"]["units"]}))
dt = time.perf_counter() - t
c1 = resource.getrusage(resource.RUSAGE_SELF)
user, system = c1.ru_utime - c0.ru_utime, c1.ru_stime - c0.ru_stime
print("RESULT " + json.dumps({"seconds": dt, "cpu_seconds": user + system, "user_seconds": user, "rows": rows,
      "max_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
      "arrow_peak_gib": pa.default_memory_pool().max_memory() / 2**30}))
"""


def _generate(root: Path, events: int) -> None:
    marker = root / "generated.json"
    if marker.exists() and json.loads(marker.read_text()).get("events_target") == events:
        return
    sys.path.insert(0, str(REPO))
    from modelgate_dev.abtest.generate import Population, generate

    n_units = int(events / (EVENTS_PER_UNIT * 1.11))  # shadow (10 %) and no-unit (1 %) records on top
    t = time.perf_counter()
    pop = Population(n_units=n_units, variants={"v1": 1, "v2": 1}, lifts={"v2": 0.05},
                     events_per_unit=EVENTS_PER_UNIT, seed=1)  # fmt: skip
    g = generate(pop, root, START, days=DAYS)
    info = {"events_target": events, "events": g.events, "units": n_units, "seconds": time.perf_counter() - t}
    marker.write_text(json.dumps(info))
    print(f"generated {g.events:,} events for {n_units:,} units in {info['seconds']:.1f} s under {root}")


def _stage(stage: str, root: Path) -> dict[str, float]:
    end = (START + timedelta(days=DAYS)).isoformat()
    import os

    env = {**os.environ, "MODELGATE_HOME": str(root.parent / "home")}
    res = subprocess.run(
        [sys.executable, "-c", _STAGE % {"repo": str(REPO)}, stage, str(root), json.dumps(EXPERIMENT), end],
        capture_output=True, text=True, cwd=REPO, timeout=3600, env=env,
    )  # fmt: skip
    if res.returncode != 0:
        raise SystemExit(f"stage {stage} failed:\n{res.stderr[-3000:]}")
    out: dict[str, float] = {}
    for line in res.stdout.splitlines():
        if line.startswith("RESULT "):
            out.update(json.loads(line[7:]))
        if line.startswith("ANALYSIS "):
            print(f"  analysis: {line[9:]}")
    return out


STAGES = ("read-all", "read-projected", "analyse-duckdb", "analyse-spark")


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the figures."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=10_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--stages", default=",".join(STAGES), help=f"comma-separated subset of {STAGES}")
    ap.add_argument("--root", type=Path, default=REPO / ".local" / "bench" / "abtest")
    args = ap.parse_args(argv)
    stages = tuple(s for s in args.stages.split(",") if s)
    unknown = sorted(set(stages) - set(STAGES))
    if unknown:
        ap.error(f"unknown stages {unknown}; known: {list(STAGES)}")
    root = args.root / str(args.events)
    root.mkdir(parents=True, exist_ok=True)
    _generate(root, args.events)
    runs: dict[str, list[dict[str, float]]] = {s: [] for s in stages}
    for i in range(args.repeat):
        for s in stages:
            r = _stage(s, root)
            runs[s].append(r)
            print(
                f"run {i + 1} {s:15s} {r['seconds']:7.2f} s  cpu {r['cpu_seconds']:7.2f} s"
                f" (user {r['user_seconds']:.2f} s)  rows {int(r['rows']):,}"
                f"  peak RSS {r['max_rss_gib']:.2f} GiB",
                flush=True,
            )
    med = {s: statistics.median(r["seconds"] for r in runs[s]) for s in stages}
    cpu = {s: statistics.median(r["cpu_seconds"] for r in runs[s]) for s in stages}
    user = {s: statistics.median(r["user_seconds"] for r in runs[s]) for s in stages}
    rss = {s: max(r["max_rss_gib"] for r in runs[s]) for s in stages}
    print()
    print(f"{'stage':16s} {'median s':>9s} {'median cpu s':>13s} {'peak RSS GiB':>13s}")
    for s in stages:
        print(f"{s:16s} {med[s]:9.2f} {cpu[s]:13.2f} {rss[s]:13.2f}")
    for s in stages:
        if not s.startswith("analyse"):
            continue
        for base in ("read-all", "read-projected"):
            if base in med:
                ratio = med[s] / med[base]
                bar = "  (bar <= 2.0: " + ("met)" if ratio <= 2.0 else "NOT met)")
                note = bar if s == "analyse-duckdb" and base == "read-projected" else ""
                print(
                    f"ratio {s} / {base:14s} = {ratio:.2f}{note}  (cpu time ratio {cpu[s] / cpu[base]:.2f},"
                    f" user cpu time ratio {user[s] / user[base]:.2f})"
                )
    if "analyse-duckdb" in rss:
        ok = rss["analyse-duckdb"] <= 1.0
        print(
            f"peak RSS analyse-duckdb = {rss['analyse-duckdb']:.2f} GiB  (bar <= 1 GiB: {'met' if ok else 'NOT met'})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
