"""Spark local mode runs the same SQL as DuckDB and gets the same answers (one session for the module)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from ab_support import START, experiment
from reference_reduce import assert_same_sums

from include.abtest.analysis import analyse_window
from include.abtest.reduce import DataError, reduce_window


@pytest.fixture(scope="module")
def spark() -> Iterator[Any]:
    """The process's Spark session in local mode, stopped after the module."""
    from include.analytics.spark import session

    s = session("local[2]")
    yield s
    s.stop()


def _exp(g: Any, **over: Any) -> Any:
    guardrails = [
        {"name": "latency", "type": "ratio", "source": "events", "numerator": "latency_ms",
         "denominator": "requests", "direction": "decrease"},
        {"name": "errors", "type": "mean", "source": "events", "column": "error", "direction": "decrease"},
    ]  # fmt: skip
    return experiment(outcomes={"path": str(g.outcomes_path)}, guardrails=guardrails, **over)


def test_spark_and_duckdb_give_the_same_statistics_and_decision(spark: Any, generated: Any) -> None:
    end = START + timedelta(days=2)
    # unit-keyed outcomes, a CUPED covariate, event metrics (ratio, error); one run: Spark's first
    # queries cost tens of seconds on this machine
    for exp in (
        _exp(generated, cuped={"path": str(generated.covariates_path), "column": "pre_conversions"}),
    ):
        d = reduce_window(exp, generated.events_root, generated.events_root.parent, end, engine="duckdb")
        s = reduce_window(exp, generated.events_root, generated.events_root.parent, end, engine="spark")
        assert s.engine == "spark" and d.engine == "duckdb" and d.counts["units"] > 1500
        assert_same_sums(s, d)
        a, b = analyse_window(exp, s, end), analyse_window(exp, d, end)
        assert a["decision"] == b["decision"]
        pa_, pb = a["metrics"][0]["comparisons"][0]["p_value"], b["metrics"][0]["comparisons"][0]["p_value"]
        assert pa_ == pytest.approx(pb, rel=1e-9)


def test_spark_reads_csv_outcomes_and_names_missing_columns(
    spark: Any, generated: Any, tmp_path: Path
) -> None:
    import pandas as pd

    pd.read_parquet(generated.outcomes_path).to_csv(tmp_path / "o.csv", index=False)
    end = START + timedelta(days=1)
    exp = experiment(outcomes={"path": str(tmp_path / "o.csv"), "format": "csv"})
    s = reduce_window(exp, generated.events_root, tmp_path, end, engine="spark")
    d = reduce_window(exp, generated.events_root, tmp_path, end, engine="duckdb")
    assert_same_sums(s, d)
    pq.write_table(pa.table({"unit_id": ["u1"], "bought": [1]}), tmp_path / "bad.parquet")
    with pytest.raises(DataError, match=r"lack columns \['converted', 'revenue'\]"):
        reduce_window(experiment(outcomes={"path": "bad.parquet"}), generated.events_root, tmp_path, end,
                      engine="spark")  # fmt: skip
    with pytest.raises(DataError, match="does not exist"):
        reduce_window(exp, tmp_path / "nope", tmp_path, end, engine="spark")


def test_the_canary_window_on_spark_equals_duckdb(
    spark: Any, generated: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from include.canary.events import load_window, samples

    start, end = START + timedelta(hours=5), START + timedelta(hours=7, minutes=30)
    got = {}
    for engine in ("duckdb", "spark"):
        monkeypatch.setenv("MODELGATE_ANALYTICS_ENGINE", engine)
        table = load_window(str(generated.events_root), "churn", start, end)
        got[engine] = (table.num_rows, samples(table, "a", "1"), samples(table, "b"))
    assert got["spark"][0] == got["duckdb"][0] > 100
    for side in (1, 2):
        for metric in ("error_rate", "latency_ms", "score"):
            np.testing.assert_array_equal(
                np.sort(got["spark"][side][metric]), np.sort(got["duckdb"][side][metric])
            )


def test_the_drift_window_on_spark_equals_duckdb(
    spark: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    from support_drift import write_events

    from include.drift.live import read_window

    t0 = START.replace(minute=30)
    scores = np.linspace(0, 1, 3000)
    scores[::7] = np.nan
    scores[5::11] = np.inf
    rows = [json.dumps({"input": [float(i), 2.0]}) if i % 9 == 0 else None for i in range(3000)]
    write_events(tmp_path, "churn", "2", t0, scores, rows)
    write_events(tmp_path, "churn", "3", t0, np.zeros(50), None)  # an older router's file: no inputs column
    got = {}
    for engine in ("duckdb", "spark"):
        monkeypatch.setenv("MODELGATE_ANALYTICS_ENGINE", engine)
        got[engine] = read_window(
            tmp_path, "churn", "2", t0 + timedelta(minutes=5), t0 + timedelta(minutes=45)
        )
    window = scores[300:2700]
    np.testing.assert_array_equal(got["duckdb"].scores, window[np.isfinite(window)])
    np.testing.assert_array_equal(got["spark"].scores, got["duckdb"].scores)
    assert got["spark"].inputs == got["duckdb"].inputs == [r for r in rows[300:2700] if r]


def test_the_canary_windows_sampled_inputs_are_parsed_alike_by_spark_and_duckdb(
    spark: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    from support_drift import write_events

    from include.canary.events import input_rows, load_window

    t0 = START.replace(minute=10)
    records = [
        json.dumps({"b": [3.0], "a": [1.0, 2.5]}),  # tensors in name order: a then b
        "not json",
        json.dumps({"a": [1.0, None]}),  # a null value: the record is left out
        json.dumps([1.0, 2.0]),  # not an object
        json.dumps({"a": 1.0}),  # not arrays
        None,
        json.dumps({"x": [4.0, 5.0, 6.0]}),
        json.dumps({"x": [7.0]}),  # another width: input_rows skips it
    ]
    write_events(tmp_path, "churn", "2", t0, np.full(len(records), 0.5), records)
    write_events(tmp_path, "churn", "3", t0, np.zeros(3), None)  # an older router's file: no inputs column
    got = {}
    for engine in ("duckdb", "spark"):
        monkeypatch.setenv("MODELGATE_ANALYTICS_ENGINE", engine)
        table = load_window(str(tmp_path), "churn", t0, t0 + timedelta(minutes=1))
        assert table.schema.field("inputs").type == pa.list_(pa.float64()), engine
        got[engine] = sorted(table.column("inputs").to_pylist(), key=str)  # the two files tie on ts
    assert got["spark"] == got["duckdb"]
    assert got["duckdb"] == sorted(
        [[1.0, 2.5, 3.0], None, None, None, None, None, [4.0, 5.0, 6.0], [7.0], None, None, None], key=str
    )
    np.testing.assert_array_equal(input_rows(table.column("inputs")), [[1.0, 2.5, 3.0], [4.0, 5.0, 6.0]])
