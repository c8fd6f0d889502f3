"""Analysis of generated data with a known answer: the lift lies in the interval, and each decision rule fires."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from ab_support import START, experiment

from include.abtest.analysis import analyse_experiment
from include.abtest.decision import (
    INVALID_SRM,
    KEEP_RUNNING,
    SHIP,
    STOP_HARM,
    STOP_INCONCLUSIVE,
    approval_outcome,
    ship_form,
)
from modelgate_dev.abtest.generate import Population, generate

DAYS = 3
END = START + timedelta(days=DAYS)


def _run(tmp: Path, pop: Population, **over):
    g = generate(pop, tmp, START, days=DAYS)
    as_of = over.pop("_as_of", END)
    over.setdefault("outcomes", {"path": str(g.outcomes_path)})
    exp = experiment(**over)
    return exp, g, analyse_experiment(exp, g.events_root, tmp, as_of=as_of)


def _primary(res):
    return res["metrics"][0]["comparisons"][0]


def test_known_lift_lies_inside_the_reported_interval_and_the_winner_ships(tmp_path: Path) -> None:
    pop = Population(n_units=40_000, variants={"a": 1, "b": 1}, lifts={"b": 0.25}, seed=11)
    exp, g, res = _run(tmp_path, pop)
    c = _primary(res)
    assert c["ci"][0] <= 0.25 <= c["ci"][1]
    assert c["ci"][0] > 0
    assert res["decision"]["decision"] == SHIP
    assert res["decision"]["winner"] == "b" and res["decision"]["winner_version"] == "2"
    assert res["srm"]["mismatch"] is False
    assert [v["units"] for v in res["variants"]] == [g.units_per_variant["a"], g.units_per_variant["b"]]
    # cumulative effect by day of first exposure ends at the full-window numbers
    series = res["cumulative"]["series"]["b"]
    assert [p["day"] for p in series] == [1, 2, 3]
    assert series[-1]["n_treatment"] == g.units_per_variant["b"]
    assert series[-1]["effect"] == pytest.approx(c["effect"])
    assert series[0]["n_treatment"] < series[-1]["n_treatment"]
    form = ship_form(exp, res, "http://mlflow/report.html")
    assert "ship b?" in form["subject"] and "| conversion | primary | b |" in form["body"]
    assert "http://mlflow/report.html" in form["body"]


def test_a_a_experiment_keeps_running_with_zero_inside_the_interval(tmp_path: Path) -> None:
    _, _, res = _run(tmp_path, Population(n_units=8000, variants={"a": 1, "b": 1}, seed=5))
    c = _primary(res)
    assert c["ci"][0] <= 0 <= c["ci"][1]
    assert res["decision"]["decision"] == KEEP_RUNNING


def test_after_the_maximum_duration_without_winner_the_experiment_stops_inconclusive(tmp_path: Path) -> None:
    _, _, res = _run(tmp_path, Population(n_units=4000, variants={"a": 1, "b": 1}, seed=6), max_duration_days=2,
                     _as_of=START + timedelta(days=5))  # fmt: skip
    assert res["decision"]["decision"] == STOP_INCONCLUSIVE
    assert res["window"][1].startswith("2026-12-03")


def test_sample_ratio_mismatch_invalidates_even_a_large_lift(tmp_path: Path) -> None:
    pop = Population(n_units=20_000, variants={"a": 55, "b": 45}, lifts={"b": 0.3}, seed=7)
    _, _, res = _run(tmp_path, pop)
    assert res["srm"]["mismatch"] is True
    assert res["decision"]["decision"] == INVALID_SRM
    assert "sample-ratio mismatch" in res["decision"]["reason"]


def test_a_worse_guardrail_stops_for_harm_even_when_the_primary_wins(tmp_path: Path) -> None:
    pop = Population(
        n_units=20_000, variants={"a": 1, "b": 1}, lifts={"b": 0.3}, latency_ms={"a": 2.0, "b": 2.4}, seed=8
    )
    _, _, res = _run(tmp_path, pop)
    assert res["decision"]["decision"] == STOP_HARM
    assert "guardrail latency of b worsened" in res["decision"]["reason"]


def test_min_sample_holds_back_a_winner(tmp_path: Path) -> None:
    pop = Population(n_units=20_000, variants={"a": 1, "b": 1}, lifts={"b": 0.3}, seed=9)
    _, _, res = _run(tmp_path, pop, min_sample=50_000)
    assert _primary(res)["good"] is True
    assert res["decision"]["decision"] == KEEP_RUNNING
    assert "fewer than 50000 units" in res["decision"]["reason"]


def test_cuped_narrows_the_interval_of_the_primary_metric(tmp_path: Path) -> None:
    pop = Population(n_units=20_000, variants={"a": 1, "b": 1}, lifts={"b": 0.1}, seed=10, pre_scale=60)
    g = generate(pop, tmp_path, START, days=DAYS)
    plain = experiment(outcomes={"path": str(g.outcomes_path)})
    cuped = experiment(outcomes={"path": str(g.outcomes_path)},
                       cuped={"path": str(g.covariates_path), "column": "pre_conversions"})  # fmt: skip
    a = _primary(analyse_experiment(plain, g.events_root, tmp_path, as_of=END))
    b = _primary(analyse_experiment(cuped, g.events_root, tmp_path, as_of=END))
    assert b["cuped"]["variance_reduction"] > 0.05
    assert (b["ci"][1] - b["ci"][0]) < (a["ci"][1] - a["ci"][0])
    assert b["ci"][0] <= 0.1 <= b["ci"][1]


def test_no_traffic_keeps_running_without_srm(tmp_path: Path) -> None:
    (tmp_path / "events").mkdir()
    exp = experiment(outcomes=None, primary={"name": "lat", "type": "mean", "source": "events", "column": "latency_ms"},
                     secondary=[])  # fmt: skip
    res = analyse_experiment(exp, tmp_path / "events", tmp_path, as_of=END)
    assert res["srm"] is None and res["cumulative"] is None
    assert res["decision"] == {"decision": KEEP_RUNNING, "reason": "no units yet in a, b", "winner": None,
                               "winner_version": None}  # fmt: skip


def test_approval_answers_are_read_as_approved_rejected_or_timed_out() -> None:
    assert approval_outcome({"chosen_options": ["Approve"], "params_input": {"reason": "ok"},
                             "responded_by_user": {"id": "1", "name": "ana"}})["outcome"] == "approved"  # fmt: skip
    rej = approval_outcome({"chosen_options": ["Reject"], "params_input": {"reason": "holiday season"},
                            "responded_by_user": {"id": "2", "name": "bo"}})  # fmt: skip
    assert rej == {"outcome": "rejected", "by": "bo", "reason": "holiday season"}
    assert approval_outcome({"chosen_options": ["Reject"], "params_input": {"reason": ""},
                             "responded_by_user": None})["outcome"] == "timed out"  # fmt: skip
    assert approval_outcome(None)["outcome"] == "no answer"
