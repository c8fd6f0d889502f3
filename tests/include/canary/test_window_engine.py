"""The canary judge's window is reduced by the engine (DuckDB here), not parsed row by row in Python.

- The judge on the engine's window gives the p-values scipy computes (Fisher's exact test,
  Mann-Whitney U) on the same rows read independently with pyarrow, and the same verdict as the judge
  on samples built by a plain-Python reference reader (``json.loads`` of every sampled record).
- What the engine returns is typed (numbers, ``list<double>`` for the sampled inputs, parsed by the
  engine's JSON functions), and turning a window into judge samples makes the same number of Python
  calls for 10x the events: no per-event Python object.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from scipy import stats

from include.canary import events
from include.canary.judge import judge
from include.canary.judge_config import JudgeConfig
from modelgate_contracts.events import FIELDS, event_schema

T0 = datetime(2026, 3, 4, 10, 30, tzinfo=UTC)
WINDOW = (T0, T0 + timedelta(hours=1))
CONFIG = {
    "metrics": {
        "error_rate": {"kind": "rate", "direction": "increase", "critical": True},
        "latency_ms": {
            "kind": "continuous",
            "direction": "increase",
            "effect": "shift",
            "abs_tolerance": 0.5,
            "rel_tolerance": 0.05,
        },
        "score": {"kind": "continuous", "direction": "either", "effect": "cles"},
        "inputs": {"kind": "drift", "direction": "increase"},
    }
}


def _write(root: Path, n: int, seed: int) -> None:
    """``n`` primary events of model churn spread over the window (canary 1/3), plus noise rows."""
    rng = np.random.default_rng(seed)
    canary = rng.random(n) < 1 / 3
    status = np.where(rng.random(n) < np.where(canary, 0.08, 0.02), 503, 200)
    latency = np.round(rng.gamma(4.0, 2.5, n) + np.where(canary, 1.5, 0.0), 2)  # rounded: ties
    score = rng.beta(2, 5, n)
    feats = rng.normal(size=(n, 3)) + np.where(canary, 0.6, 0.0)[:, None] * np.array([0, 0, 1])
    sampled = rng.random(n) < 0.4
    inputs: list[str | None] = [
        json.dumps({"b": [float(f[2])], "a": [float(f[0]), float(f[1])]}) if s else None
        for f, s in zip(feats, sampled, strict=True)
    ]
    inputs[1] = "not json"  # malformed and odd-width records are left out by both readers
    inputs[2] = json.dumps({"a": [1.0]})
    model = np.where(rng.random(n) < 0.05, "other", "churn")  # another model: filtered out
    cols: dict[str, Any] = {
        "ts": pa.array(
            [T0 + timedelta(seconds=3600 * i / n) for i in range(n)], type=pa.timestamp("us", tz="UTC")
        ),
        "request_id": [f"r{i}" for i in range(n)],
        "model": model.tolist(),
        "variant": np.where(canary, "canary", "champion").tolist(),
        "model_version": np.where(canary, "2", "1").tolist(),
        "unit_id": [f"u{i}" for i in range(n)],
        "consent": (rng.random(n) > 0.05).tolist(),
        "latency_ms": latency.tolist(),
        "status": pa.array(status, type=pa.int32()),
        "rows": pa.array(np.ones(n, dtype=np.int32)),
        "score": np.where(status == 200, score, np.nan).tolist(),
        "shadow": (rng.random(n) < 0.1).tolist(),
        "error": [None] * n,
        "inputs": inputs,
    }
    table = pa.table({k: cols[k] for k in FIELDS}, schema=event_schema())
    half = n // 2  # two files in the window's hour folder, one in the next
    for name, part in (("a", table.slice(0, half)), ("b", table.slice(half))):
        hour = part.column("ts")[0].as_py()
        folder = root / f"date={hour:%Y-%m-%d}" / f"hour={hour:%H}"
        folder.mkdir(parents=True, exist_ok=True)
        pq.write_table(part, folder / f"part-{name}.parquet")


def _reference(root: Path, variant: str, version: str) -> dict[str, Any]:
    """One side's samples read with pyarrow and filtered in plain Python (the reference reader)."""
    rows = [
        r
        for f in sorted(root.glob("date=*/hour=*/*.parquet"))
        for r in pq.read_table(f).to_pylist()
        if r["model"] == "churn" and not r["shadow"] and WINDOW[0] <= r["ts"] < WINDOW[1]
        and r["variant"] == variant and r["model_version"] == version and r["consent"]
    ]  # fmt: skip
    vecs = []
    for r in rows:
        try:
            obj = json.loads(r["inputs"]) if r["inputs"] else None
        except ValueError:
            obj = None
        if isinstance(obj, dict):
            vecs.append([float(v) for k in sorted(obj) for v in obj[k]])
    width = max({len(v) for v in vecs}, key=[len(v) for v in vecs].count)
    return {
        "error_rate": [float(r["status"] != 200) for r in rows],
        "latency_ms": [r["latency_ms"] for r in rows],
        "score": [r["score"] for r in rows if r["status"] == 200],
        "inputs": np.array([v for v in vecs if len(v) == width]),
    }


@pytest.fixture(scope="module")
def window_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("canary-events")
    _write(root, 3000, seed=11)
    return root


def test_the_judge_on_the_engines_window_matches_scipy_and_the_python_reference_verdict(
    window_root: Path,
) -> None:
    table = events.load_window(str(window_root), "churn", *WINDOW)
    can, base = events.samples(table, "canary", "2"), events.samples(table, "champion", "1")
    ref_c, ref_b = _reference(window_root, "canary", "2"), _reference(window_root, "champion", "1")
    for key in ("error_rate", "latency_ms", "score"):
        np.testing.assert_array_equal(np.sort(can[key]), np.sort(ref_c[key]))
        np.testing.assert_array_equal(np.sort(base[key]), np.sort(ref_b[key]))
    np.testing.assert_array_equal(can["inputs"], ref_c["inputs"])  # same rows, same (time) order
    assert can["inputs"].shape[1] == 3 and len(can["inputs"]) > 200

    cfg = JudgeConfig.from_dict(CONFIG)
    got, want = judge(can, base, cfg), judge(ref_c, ref_b, cfg)
    assert got["decision"] == want["decision"] == "rollback"
    by_name = {m["name"]: m for m in got["metrics"]}
    for m in want["metrics"]:
        assert by_name[m["name"]]["classification"] == m["classification"]
        assert by_name[m["name"]]["p_value"] == pytest.approx(m["p_value"], rel=1e-12)

    # scipy on the reference rows (Fisher one-sided 'greater'; Mann-Whitney with tie and continuity correction)
    xc, nc = sum(ref_c["error_rate"]), len(ref_c["error_rate"])
    xb, nb = sum(ref_b["error_rate"]), len(ref_b["error_rate"])
    fisher = stats.fisher_exact([[xc, nc - xc], [xb, nb - xb]], alternative="greater").pvalue
    assert by_name["error_rate"]["p_value"] == pytest.approx(fisher, rel=1e-9)
    for key, alt in (("latency_ms", "greater"), ("score", "two-sided")):
        mw = stats.mannwhitneyu(ref_c[key], ref_b[key], alternative=alt, method="asymptotic")
        assert by_name[key]["p_value"] == pytest.approx(mw.pvalue, rel=1e-9)
        assert by_name[key]["statistic"] == pytest.approx(mw.statistic, rel=1e-12)
    assert (
        by_name["latency_ms"]["classification"] == "High"
        and "x2" in by_name["inputs"]["thresholds"]["drifted"]
    )


def _python_calls(fn: Callable[[], Any]) -> int:
    """Python and C function calls made while ``fn`` runs (``sys.setprofile``)."""
    calls = 0

    def profile(frame: Any, event: str, arg: Any) -> None:
        nonlocal calls
        if event in ("call", "c_call"):
            calls += 1

    sys.setprofile(profile)
    try:
        fn()
    finally:
        sys.setprofile(None)
    return calls


def test_the_window_arrives_typed_from_the_engine_and_samples_take_no_per_event_python_calls(
    window_root: Path, tmp_path: Path
) -> None:
    table = events.load_window(str(window_root), "churn", *WINDOW)
    types = dict(zip(table.column_names, table.schema.types, strict=True))
    assert types["inputs"] == pa.list_(pa.float64()), "the sampled inputs are parsed by the engine"
    assert types["latency_ms"] == types["score"] == pa.float64() and types["status"] == pa.int32()

    big = tmp_path / "big"
    _write(big, 30_000, seed=12)
    large = events.load_window(str(big), "churn", *WINDOW)
    assert large.num_rows > 9 * table.num_rows

    def to_samples(t: Any) -> Callable[[], Any]:
        return lambda: (events.samples(t, "canary", "2"), events.samples(t, "champion", "1"))

    small_calls, large_calls = _python_calls(to_samples(table)), _python_calls(to_samples(large))
    # a per-event step (json.loads, float(), list.append per row) would add >= 10,000 calls here
    assert large_calls <= small_calls + 20, (small_calls, large_calls)
