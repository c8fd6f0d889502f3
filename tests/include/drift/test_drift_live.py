"""Live samples from event files (contract schema plus the router's nullable ``inputs`` column) and the
assessment of a window against the feature spec and the previous window."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
from support_drift import write_events

from include.drift.live import LiveSample, read_window
from include.drift.monitor import SCORE, assess
from include.synthetic import FeatureSpec

T0 = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)


def test_read_window_filters_model_version_time_and_maps_sampled_inputs(tmp_path: Path) -> None:
    rows = [json.dumps({"input": [float(i), 1.0]}) if i % 10 == 0 else None for i in range(3600)]
    write_events(tmp_path, "churn", "2", T0, np.linspace(0, 1, 3600), rows)  # 09:30 .. 10:30
    write_events(tmp_path, "other", "2", T0, np.zeros(100), None)  # older file without inputs column
    live = read_window(
        tmp_path, "churn", "2", T0 + timedelta(minutes=10), T0 + timedelta(minutes=50), ["a", "b"]
    )
    assert live.scores.size == 2400 and live.scores[0] == np.linspace(0, 1, 3600)[600]
    assert len(live.inputs) == 240 and live.unmapped == 0 and live.inputs.iloc[0].tolist() == [600.0, 1.0]
    scores_only = read_window(tmp_path, "churn", "2", T0, T0 + timedelta(hours=1))
    assert list(scores_only.inputs.columns) == [] and scores_only.sampled == 360
    assert read_window(tmp_path, "churn", "3", T0, T0 + timedelta(hours=2)).scores.size == 0
    assert read_window(tmp_path, "other", None, T0, T0 + timedelta(hours=2), None).sampled == 0


def test_the_engine_maps_one_tensor_in_spec_order_or_one_tensor_per_feature(tmp_path: Path) -> None:
    records = [
        json.dumps({"input": [1.0, 2.0, 3.0]}),
        json.dumps({"c": [6.0], "a": [4.0], "b": [5.0]}),
        json.dumps({"input": [1.0, 2.0]}),  # wrong width
        "not json",
        json.dumps({"input": [7, None, 9]}),  # integers; a null value reads as NaN
    ]
    write_events(tmp_path, "churn", "2", T0, np.zeros(len(records)), records)
    live = read_window(tmp_path, "churn", "2", T0, T0 + timedelta(minutes=1), ["a", "b", "c"])
    assert live.unmapped == 2 and live.sampled == 5
    assert live.inputs.fillna(-1.0).to_dict("list") == {
        "a": [1.0, 4.0, 7.0],
        "b": [2.0, 5.0, -1.0],
        "c": [3.0, 6.0, 9.0],
    }
    # no spec: x0 .. x2 from the first record, the values of all tensors in name order
    live = read_window(tmp_path, "churn", "2", T0, T0 + timedelta(minutes=1), None)
    assert list(live.inputs.columns) == ["x0", "x1", "x2"] and live.inputs["x0"].tolist() == [1.0, 4.0, 7.0]


def _spec(n: int = 5000) -> FeatureSpec:
    rng = np.random.default_rng(0)
    ref = pd.DataFrame({"x0": rng.normal(size=n), "x1": rng.exponential(size=n), "x2": rng.normal(size=n)})
    return FeatureSpec.fit(ref)


def test_assess_flags_the_shifted_input_feature_against_the_feature_spec() -> None:
    spec = _spec()
    rng = np.random.default_rng(1)
    live = spec.sample(3000, seed=7)
    live["x1"] = live["x1"] + 0.5
    scores = rng.beta(2, 5, 3000)
    result, pairs = assess(LiveSample(scores, live.astype("float64")), LiveSample(rng.beta(2, 5, 3000)), spec)
    assert result["verdict"] == "drift" and result["drifted"] == ["x1"]
    assert set(result["features"]) == {"x0", "x1", "x2", SCORE}
    assert pairs["x1"][0].size == 3000 and pairs["x1"][1].size == 3000


def test_assess_without_inputs_compares_scores_with_the_previous_window_and_reports_no_data() -> None:
    rng = np.random.default_rng(2)
    same, _ = assess(LiveSample(rng.beta(2, 5, 800)), LiveSample(rng.beta(2, 5, 800)), None)
    assert same["verdict"] == "no_drift" and list(same["features"]) == [SCORE]
    assert any("no sampled inputs" in n for n in same["notes"])
    moved, _ = assess(LiveSample(rng.beta(5, 2, 800)), LiveSample(rng.beta(2, 5, 800)), None)
    assert moved["verdict"] == "drift" and moved["drifted"] == [SCORE]
    empty, _ = assess(LiveSample(np.zeros(10)), LiveSample(np.zeros(10)), None)
    assert empty["verdict"] == "no_data" and empty["no_data"] == [SCORE]


def test_inputs_written_by_the_routers_own_sink_are_read_back(tmp_path: Path) -> None:
    from router.events import EventSink

    sink = EventSink(str(tmp_path), flush_rows=10**6, flush_seconds=60, max_buffer=10**6)
    t0 = int(T0.timestamp() * 1_000_000)
    for i in range(60):
        inputs = json.dumps({"input": [i / 10, 1.0, -1.0]}) if i % 2 == 0 else None
        sink.append(
            (
                t0 + i * 1_000_000,
                f"r{i}",
                "churn",
                "champion",
                "4",
                f"u{i}",
                True,
                1.0,
                200,
                1,
                0.5,
                False,
                None,
                inputs,
            )
        )
    sink.close()
    live = read_window(tmp_path, "churn", "4", T0, T0 + timedelta(minutes=5), ["a", "b", "c"])
    assert live.scores.size == 60 and len(live.inputs) == 30
    assert live.unmapped == 0 and live.inputs["a"].tolist() == [i / 10 for i in range(0, 60, 2)]
