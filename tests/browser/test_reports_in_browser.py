"""The HTML reports people decide on, loaded in headless Chromium: no console error, key numbers in the DOM.

Each report is made by the project's own report code from real computations (A/B analysis of generated
events, drift comparison, regression plots); the numbers looked for are computed here independently
(unit counts read from the events with pyarrow, sample sizes of the arrays).
"""

from __future__ import annotations

import sys
from datetime import timedelta
from pathlib import Path

import numpy as np
import pyarrow.dataset as ds

from modelgate_dev.browser import check_pages

sys.path.insert(0, str(Path(__file__).parents[1] / "include" / "abtest"))
from ab_support import START, experiment


def _check(url: str, texts: list[str], shot: Path) -> None:
    (c,) = check_pages([(url, texts, shot)])
    assert c.ok, (c.errors, c.missing)
    assert shot.stat().st_size > 5_000  # a real rendering, not a blank page


def test_ab_report_renders_with_the_unit_counts_of_the_events(chromium: str, tmp_path: Path) -> None:
    from include.abtest.analysis import analyse_experiment
    from include.abtest.report import render_html
    from modelgate_dev.abtest.generate import Population, generate

    g = generate(Population(n_units=6_000, variants={"a": 1, "b": 1}, lifts={"b": 0.25}, seed=3), tmp_path, START, days=2)
    exp = experiment(outcomes={"path": str(g.outcomes_path)})
    res = analyse_experiment(exp, g.events_root, tmp_path, as_of=START + timedelta(days=2))
    events = ds.dataset(str(g.events_root), format="parquet", partitioning="hive").to_table(columns=["unit_id"])
    units = {u for u in events.column("unit_id").to_pylist() if u}
    page = tmp_path / "ab.html"
    page.write_text(render_html(res))
    counts = [f"<td>units_seen</td><td>{len(units)}</td>"]
    _check(page.as_uri(), [f"experiment {exp.id}", f"Decision: {res['decision']['decision']}", *counts], tmp_path / "ab.png")


def test_drift_report_renders_each_feature_and_its_sample_sizes(chromium: str, tmp_path: Path) -> None:
    from include.drift.detect import compare
    from include.drift.report import render

    rng = np.random.default_rng(5)
    pairs = {"age": (rng.normal(40, 5, 1500), rng.normal(45, 5, 1300), False),
             "plan": (rng.integers(0, 3, 1500).astype(float), rng.integers(0, 3, 1300).astype(float), True)}  # fmt: skip
    result = compare(pairs)
    page = tmp_path / "drift.html"
    page.write_text(render("churn v2", result, pairs))
    _check(page.as_uri(), ["Drift: churn v2", ">age<", ">plan<", ">1500<", ">1300<"], tmp_path / "drift.png")


def test_regression_report_renders_the_verdict_checks_and_plots(chromium: str, tmp_path: Path) -> None:
    from include.regression.report import plots, render_html

    rng = np.random.default_rng(9)
    champion = rng.beta(2, 5, 2000)
    images = plots(champion, np.clip(champion + rng.normal(0, 0.02, 2000), 0, 1), 10, None)
    doc = {"model_name": "churn", "version": "2", "champion_version": "1", "verdict": "pass", "reasons": [],
           "rows": 2000, "checked_at": "2026-12-03T10:00:00+00:00", "airflow_run_id": "manual__x", "policy": {},
           "checks": [{"name": "agreement", "status": "pass", "reason": "0.97 >= 0.95", "figures": {"agreement": 0.97}}]}  # fmt: skip
    page = tmp_path / "regression.html"
    page.write_text(render_html(doc, images))
    (c,) = check_pages([(page.as_uri(), ["Verdict: pass", "agreement=0.97", "2000 synthetic rows"], tmp_path / "r.png")])
    assert c.ok, (c.errors, c.missing)
    assert len(images) >= 1 and c.screenshot is not None
