"""The A/B stage of ``make demo``: v1 against v2 through the router, analysed, decided.

:func:`run_ab_demo` simulates traffic through a running router (whose routes for ``model``
must already hold the two variants with the weights given here), writes an experiment
file, waits until the router has written the events, runs the ``ab_analysis`` steps
(analysis, report logged to MLflow, decision) and returns the effect, interval and decision.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from include.abtest.errors import AbTestError
from include.synthetic.files import atomic_write
from modelgate_dev.abtest.simulator import Simulation, simulate

log = logging.getLogger(__name__)


def _events_written(events_root: Path, model: str, since: datetime) -> int:
    import pyarrow.compute as pc
    import pyarrow.dataset as ds

    if not events_root.exists() or not any(events_root.rglob("*.parquet")):
        return 0
    dset = ds.dataset(str(events_root), format="parquet", partitioning="hive")
    flt = (pc.field("model") == model) & (pc.field("shadow") == False) & (pc.field("ts") >= since)  # noqa: E712
    return int(dset.count_rows(filter=flt))


def prepare_ab_experiment(
    router_url: str,
    model: str,
    events_root: Path | str,
    out_dir: Path | str,
    *,
    control: tuple[str, str],
    treatment: tuple[str, str],
    weights: tuple[float, float] = (50.0, 50.0),
    lift: float = 0.15,
    n_units: int = 4000,
    requests_per_unit: int = 2,
    feature_spec: str | None = None,
    api_key: str | None = None,
    wait_seconds: float = 60.0,
) -> tuple[str, dict[str, Any]]:
    """Simulate an A/B experiment through the router and write its experiment file.

    Arguments as :func:`run_ab_demo`.

    Returns:
        ``(experiment id, ab_analysis conf)``: the conf names the experiments folder, the events
        root, the data root and an ``as_of`` just after the traffic.

    Raises:
        AbTestError: the simulation failed or the events did not arrive in time.
    """
    out = Path(out_dir)
    exp_id = f"{model}-ab-demo"
    start = datetime.now(UTC) - timedelta(seconds=1)
    sim = simulate(
        Simulation(router_url=router_url, model=model, n_units=n_units, requests_per_unit=requests_per_unit,
                   lifts={treatment[0]: lift}, feature_spec=feature_spec, api_key=api_key),
        out / "data",
    )  # fmt: skip
    expected = sim.requests
    deadline = time.monotonic() + wait_seconds
    while _events_written(Path(events_root), model, start) < expected:
        if time.monotonic() > deadline:
            raise AbTestError(
                f"the router wrote fewer than {expected} events under {events_root} in {wait_seconds}s"
            )
        time.sleep(1.0)
    doc = {
        "id": exp_id,
        "model": model,
        "variants": [
            {"name": control[0], "weight": weights[0], "model_version": control[1]},
            {"name": treatment[0], "weight": weights[1], "model_version": treatment[1]},
        ],
        "control": control[0],
        "start": start.isoformat(),
        "max_duration_days": 14,
        "alpha": 0.05,
        "mde": lift,
        "min_sample": min(1000, max(2, n_units // 4)),
        "primary": {"name": "conversion", "type": "proportion", "column": "converted"},
        "secondary": [{"name": "revenue", "type": "mean", "column": "revenue"}],
        "guardrails": [{"name": "error_rate", "type": "ratio", "source": "events", "numerator": "error",
                        "denominator": "requests", "direction": "decrease", "difference": "absolute"}],
        "outcomes": {"path": str(sim.outcomes_path)},
        "cuped": {"path": str(sim.covariates_path), "column": "pre_conversions"},
        "sequential": {"enabled": True, "tuning_parameter": float(n_units)},
    }  # fmt: skip
    exps = out / "experiments"
    exps.mkdir(parents=True, exist_ok=True)
    text = yaml.safe_dump(doc, sort_keys=False)
    atomic_write(exps / f"{exp_id}.yaml", lambda tmp: tmp.write_text(text, encoding="utf-8"))
    conf = {"experiments_dir": str(exps), "events_root": str(events_root), "data_root": str(out),
            "as_of": (datetime.now(UTC) + timedelta(seconds=1)).isoformat()}  # fmt: skip
    return exp_id, conf


def read_results(summary: dict[str, Any], out_dir: Path | str, tracking_uri: str | None = None) -> dict[str, Any]:
    """Return the primary comparison of an analysed experiment (from its MLflow ``results.json``).

    Args:
        summary: what the analysis returned (``run_id``, ``decision``, ``winner``, ...).
        out_dir: where the artifact is downloaded.
        tracking_uri: MLflow server (default: settings).

    Returns:
        ``{"experiment", "effect", "ci", "p_value", "decision", "reason", "winner", "winner_version",
        "run_url", "report_url"}``.
    """
    import json

    from mlflow.tracking import MlflowClient

    from include.config import get_settings

    client = MlflowClient(tracking_uri or get_settings().tracking_uri)
    results = json.loads(
        Path(client.download_artifacts(summary["run_id"], "results.json", str(out_dir))).read_text()
    )
    c = results["metrics"][0]["comparisons"][0]
    return {
        "experiment": summary["experiment"],
        "effect": c["effect"],
        "ci": c["ci"],
        "p_value": c["p_value"],
        "decision": summary["decision"],
        "reason": summary["reason"],
        "winner": summary["winner"],
        "winner_version": summary["winner_version"],
        "run_url": summary["run_url"],
        "report_url": summary["report_url"],
    }


def run_ab_demo(
    router_url: str,
    model: str,
    events_root: Path | str,
    out_dir: Path | str,
    *,
    control: tuple[str, str],
    treatment: tuple[str, str],
    weights: tuple[float, float] = (50.0, 50.0),
    lift: float = 0.15,
    n_units: int = 4000,
    requests_per_unit: int = 2,
    feature_spec: str | None = None,
    api_key: str | None = None,
    tracking_uri: str | None = None,
    wait_seconds: float = 60.0,
) -> dict[str, Any]:
    """Run an A/B experiment between two router variants and analyse it.

    Args:
        router_url: the router's base URL.
        model: model name in the router and the registry.
        events_root: the router's ``ROUTER_EVENTS_ROOT``.
        out_dir: where the experiment file, outcomes and covariates go.
        control: ``(router variant name, registry version)`` of the control (v1).
        treatment: ``(router variant name, registry version)`` of the treatment (v2).
        weights: the variants' weights as set in the router.
        lift: the treatment's true relative lift of the conversion rate.
        n_units: simulated units.
        requests_per_unit: requests per unit.
        feature_spec: feature spec JSON for the inputs (the demo's ``feature_spec.json``).
        api_key: inference token, if the router needs one.
        tracking_uri: MLflow server for the report.
        wait_seconds: how long to wait for the router to write the events.

    Returns:
        ``{"experiment", "effect", "ci", "p_value", "decision", "reason", "winner",
        "winner_version", "true_lift", "run_url", "report_url", "experiments_dir"}``.

    Raises:
        AbTestError: the simulation failed or the events did not arrive in time.
    """
    from include.abtest import pipeline

    exp_id, conf = prepare_ab_experiment(
        router_url, model, events_root, out_dir, control=control, treatment=treatment, weights=weights,
        lift=lift, n_units=n_units, requests_per_unit=requests_per_unit, feature_spec=feature_spec,
        api_key=api_key, wait_seconds=wait_seconds,
    )  # fmt: skip
    summary = pipeline.analyse(exp_id, f"demo-{int(time.time())}", conf, tracking_uri)
    out = read_results(summary, out_dir, tracking_uri)
    out.update(experiment=exp_id, true_lift=lift, experiments_dir=conf["experiments_dir"])
    return out
