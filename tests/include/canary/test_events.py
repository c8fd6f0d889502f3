"""Reading the router's event files (written by the router's own sink) for a judge window."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from router.events import EventSink

from include.canary import events
from include.canary.errors import CanaryError


def _us(dt: datetime) -> int:
    return int(dt.timestamp() * 1_000_000)


def test_window_keeps_only_primary_events_of_the_model_in_time_and_splits_by_variant(tmp_path: Path) -> None:
    t0 = datetime(2026, 3, 1, 9, 59, 50, tzinfo=UTC)  # the window spans two hour partitions
    sink = EventSink(str(tmp_path), flush_rows=10**6, flush_seconds=60, max_buffer=10**6)
    recs = []
    for i in range(40):
        ts = _us(t0 + timedelta(seconds=i))  # 09:59:50 .. 10:00:29
        variant = "canary" if i % 4 == 0 else "champion"
        status = 500 if (variant == "canary" and i % 8 == 0) else 200
        score = None if status == 500 else i / 100
        recs.append(
            (
                ts,
                f"r{i}",
                "churn",
                variant,
                "2" if variant == "canary" else "1",
                f"u{i}",
                True,
                float(i),
                status,
                1,
                score,
                False,
                None if status == 200 else "boom",
            )
        )
    recs.append(
        (
            _us(t0 + timedelta(seconds=5)),
            "s",
            "churn",
            "canary",
            "2",
            "u",
            False,
            1.0,
            200,
            1,
            0.9,
            True,
            None,
        )
    )
    recs.append(
        (
            _us(t0 + timedelta(seconds=5)),
            "o",
            "other",
            "canary",
            "2",
            "u",
            False,
            1.0,
            200,
            1,
            0.9,
            False,
            None,
        )
    )
    for k in range(3):  # requests without consent (the router recorded them without a unit id)
        ts = _us(t0 + timedelta(seconds=10 + k, milliseconds=500))
        recs.append((ts, f"n{k}", "churn", "canary", "2", None, False, 999.0, 500, 1, None, False, "x"))
    for r in recs:
        sink.append(r)
    sink.close()
    assert len(list(tmp_path.glob("date=2026-03-01/hour=*/*.parquet"))) == 2

    start, end = t0 + timedelta(seconds=2), t0 + timedelta(seconds=34)
    table = events.load_window(str(tmp_path), "churn", start, end)
    assert table.num_rows == 35, "seconds 2..33 of model churn, no shadow, no other model"
    assert events.excluded_without_consent(table, "canary", "2") == 3
    assert events.excluded_without_consent(table, "champion") == 0
    can = events.samples(table, "canary", "2")
    champ = events.samples(table, "champion")
    idx = [i for i in range(2, 34) if i % 4 == 0]
    assert can["latency_ms"].tolist() == [float(i) for i in idx]
    assert can["error_rate"].tolist() == [1.0 if i % 8 == 0 else 0.0 for i in idx]
    assert np.allclose(can["score"], [i / 100 for i in idx if i % 8 != 0])
    assert champ["error_rate"].sum() == 0 and champ["latency_ms"].size == 32 - len(idx)
    assert events.samples(table, "canary", "3")["latency_ms"].size == 0, "another version has no events"


def test_empty_or_missing_window_gives_empty_samples_and_bad_window_is_refused(tmp_path: Path) -> None:
    now = datetime.now(UTC)
    table = events.load_window(str(tmp_path / "nothing"), "churn", now - timedelta(minutes=1), now)
    assert table.num_rows == 0
    assert events.samples(table, "canary")["score"].size == 0
    with pytest.raises(CanaryError, match="invalid event window"):
        events.load_window(str(tmp_path), "churn", now, now - timedelta(seconds=1))


def test_sampled_inputs_of_the_window_feed_a_drift_metric_of_the_judge(tmp_path: Path) -> None:
    import json

    from include.canary.judge import judge
    from include.canary.judge_config import JudgeConfig

    rng = np.random.default_rng(7)
    t0 = datetime(2026, 3, 2, 12, 0, 0, tzinfo=UTC)
    sink = EventSink(str(tmp_path), flush_rows=10**6, flush_seconds=60, max_buffer=10**6)
    rows = {"champion": rng.normal(size=(300, 4)), "canary": rng.normal(size=(300, 4))}
    rows["canary"][:, 2] += 0.8  # the canary's traffic differs in one feature
    n = 0
    for variant, m in rows.items():
        for i, row in enumerate(m):
            inputs = json.dumps({"input": row.tolist()}) if i % 2 == 0 else None  # half the records sampled
            sink.append(
                (_us(t0 + timedelta(milliseconds=n)), f"r{n}", "churn", variant,
                 "2" if variant == "canary" else "1", f"u{n}", True, 1.0, 200, 1, 0.5, False, None, inputs)
            )  # fmt: skip
            n += 1
    sink.append(
        (_us(t0 + timedelta(milliseconds=n)), "odd", "churn", "canary", "2", "u", True, 1.0, 200, 1, 0.5,
         False, None, json.dumps({"input": [1.0, 2.0]}))
    )  # fmt: skip
    sink.close()
    table = events.load_window(str(tmp_path), "churn", t0, t0 + timedelta(seconds=5))
    can, champ = events.samples(table, "canary", "2"), events.samples(table, "champion")
    assert can["inputs"].shape == (150, 4), "sampled rows only; the row of another width is skipped"
    assert np.allclose(champ["inputs"], rows["champion"][::2])
    cfg = JudgeConfig.from_dict({"metrics": {"inputs": {"kind": "drift", "critical": True}}})
    res = judge(can, champ, cfg)
    drift = next(m for m in res["metrics"] if m["name"] == "inputs")
    assert drift["thresholds"]["drifted"] == ["x2"] and res["decision"] == "rollback"


def test_the_approval_evidence_says_how_many_requests_without_consent_were_not_judged() -> None:
    from include.canary.evidence import evidence_markdown
    from include.evidence import approvals

    metric = {"name": "latency_ms", "classification": "pass", "failed": False, "canary": {"p50": 1.0},
              "baseline": {"p50": 1.0}, "effect": 0.1, "interval": [-0.2, 0.4], "tolerance": 0.5, "p_value": 0.3,
              "n_canary": 90, "n_baseline": 95}  # fmt: skip
    result = {"stage": 0, "weight_bp": 500, "score": 100, "decision": "promote", "reasons": [], "metrics": [metric],
              "excluded_without_consent": {"canary": 7, "baseline": 11}}  # fmt: skip
    body = evidence_markdown({"model": "churn", "version": "2", "champion": "1"}, result)
    assert "Requests without consent, not judged: canary 7, baseline 11" in body
    assert [r["label"] for r in approvals.intervals(body)] == ["latency_ms"], "the table still reads back"
