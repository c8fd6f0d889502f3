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
            tmp_path, "churn", "2", t0 + timedelta(minutes=5), t0 + timedelta(minutes=45), ["a", "b"]
        )
    window = scores[300:2700]
    np.testing.assert_array_equal(got["duckdb"].scores, window[np.isfinite(window)])
    np.testing.assert_array_equal(got["spark"].scores, got["duckdb"].scores)
    want = [[float(i), 2.0] for i in range(300, 2700) if i % 9 == 0]
    for engine in ("duckdb", "spark"):
        assert got[engine].inputs.to_numpy().tolist() == want and got[engine].unmapped == 0


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


def _drift_records(n: int) -> tuple[list[str | None], Any]:
    """Sampled input records of a 3-feature model (x1 shifted) in both of the router's layouts, and junk."""
    import json

    import pandas as pd

    from include.synthetic import FeatureSpec

    rng = np.random.default_rng(0)
    spec = FeatureSpec.fit(pd.DataFrame({"x0": rng.normal(size=4000), "x1": rng.exponential(size=4000),
                                         "x2": rng.integers(0, 5, size=4000)}))  # fmt: skip
    live = spec.sample(n, seed=3)
    live["x1"] = live["x1"] + 0.6
    junk = [
        "not json", "[1, 2, 3]", "{}", '{"input": [1.0, 2.0]}', '{"input": [true, 1.0, 2.0]}',
        '{"input": ["2.5", 1.0, 2.0]}', '{"x0": [1.0], "x0": [2.0], "x1": [1.0], "x2": [1.0]}',
        '{"input": [[1.0], 2.0, 3.0]}', '{"x0": [1.0], "x1": [2.0]}', '{"input": 3.0}', "",
        '{"x0": [1.0, 2.0], "x1": [1.0], "x2": [4.0]}', '{"input": [NaN, 1.0, 2.0]}',
    ]  # fmt: skip
    records: list[str | None] = []
    for i, row in enumerate(live.itertuples(index=False)):
        x0, x1, x2 = float(row.x0), float(row.x1), int(row.x2)
        if i % 3 == 0:  # one tensor per feature, an extra tensor the mapping ignores
            records.append(
                json.dumps({"x2": [x2], "x0": [x0], "x1": [None if i % 97 == 0 else x1], "id": [i, i]})
            )
        else:  # one input tensor, integers as JSON integers
            records.append(json.dumps({"input": [x0, x1, x2]}))
        records.append(None)  # an event without a sample
        if i % 50 == 0:
            records.append(junk[(i // 50) % len(junk)])
    return records, spec


def test_drift_inputs_mapped_by_spark_and_duckdb_equal_the_python_reference_and_give_one_verdict(
    spark: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pandas as pd
    from drift_reference import reference_rows
    from support_drift import write_events

    from include.drift.live import LiveSample, read_window
    from include.drift.monitor import assess

    records, spec = _drift_records(1500)
    t0 = START.replace(minute=30)
    write_events(tmp_path, "churn", "2", t0, np.linspace(0, 1, len(records)), records)
    end = t0 + timedelta(seconds=len(records))
    sampled = [r for r in records if r]
    features = spec.feature_names
    want, want_bad = reference_rows(sampled, features)
    want_x, want_x_bad = reference_rows(sampled, None)
    # every 50th slot holds junk (30 records, 2 of them empty strings: not sampled): none maps
    assert want_bad == 28 and len(want) == 1500
    assert want["x2"].isin(range(5)).all() and want["x1"].isna().sum() == 6  # x1 null in every 291st record
    # no spec: the first record (one tensor per feature + "id") sets 5 values: id, id, x0, x1, x2
    assert list(want_x.columns) == [f"x{i}" for i in range(5)] and len(want_x) == 500
    assert want_x_bad == len(sampled) - 500 and want_x["x2"].tolist() == want["x0"].iloc[::3].tolist()
    verdicts = []
    for engine in ("duckdb", "spark"):
        monkeypatch.setenv("MODELGATE_ANALYTICS_ENGINE", engine)
        got = read_window(tmp_path, "churn", "2", t0, end, features)
        pd.testing.assert_frame_equal(got.inputs, want, check_exact=True)
        assert got.unmapped == want_bad
        got_x = read_window(tmp_path, "churn", "2", t0, end, None)
        pd.testing.assert_frame_equal(got_x.inputs, want_x, check_exact=True)
        assert got_x.unmapped == want_x_bad
        verdicts.append(assess(got, LiveSample(np.array([])), spec)[0])
    ref = assess(LiveSample(got.scores, want, want_bad), LiveSample(np.array([])), spec)[0]
    for result in verdicts:
        assert result["verdict"] == ref["verdict"] == "drift" and result["drifted"] == ref["drifted"] == [
            "x1"
        ]
        for name, f in ref["features"].items():
            assert result["features"][name]["p_value"] == pytest.approx(f["p_value"], rel=1e-12)
