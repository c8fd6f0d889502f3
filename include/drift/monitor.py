"""Drift check of a registered model's champion: live inputs and scores against their references.

Per model (:func:`check`):

- **inputs**: the sampled input rows of the window (:mod:`include.drift.live`) against a sample of the
  version's registered feature spec (tag ``modelgate.feature_spec``, ``include.synthetic``) of the
  same size (at least :data:`MIN_REFERENCE_ROWS`); without a spec, against the previous window's inputs;
- **scores**: the prediction summaries of the window against those of the previous window of the same
  length (the reference until the training scores are registered);
- one Benjamini-Hochberg family over all features and the score at ``alpha``; a feature with fewer than
  :data:`MIN_SAMPLES` values on a side is left out and listed in ``no_data``.

Outputs: ``results.json`` and ``report.html`` in an MLflow run of the experiment :data:`EXPERIMENT`,
``modelgate.drift.*`` tags on the version, and on confirmed drift the alert callback
(``MODELGATE_DRIFT_ALERT``, a ``package.module:function`` taking the alert record; default
:func:`include.canary.notify.log_event`).
"""

from __future__ import annotations

import json
import logging
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from include.drift.detect import DEFAULT_ALPHA, compare
from include.drift.live import LiveSample, read_window

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from include.synthetic import FeatureSpec

log = logging.getLogger(__name__)

EXPERIMENT = "modelgate-drift"
MIN_SAMPLES = 50
"""Values needed on each side of a feature, below which it is left out (NoData)."""
MIN_REFERENCE_ROWS = 2_000
SCORE = "prediction_score"
"""Name of the score in the results (not a feature name of any spec)."""

TAG_VERDICT = "modelgate.drift.verdict"
TAG_CHECKED_AT = "modelgate.drift.checked_at"
TAG_DRIFTED = "modelgate.drift.drifted"
TAG_RUN_ID = "modelgate.drift.run_id"
TAG_WINDOW = "modelgate.drift.window"
ALERT_ENV = "MODELGATE_DRIFT_ALERT"
DEFAULT_ALERT = "include.canary.notify:log_event"


def _labels(values: pd.Series) -> np.ndarray:
    """A categorical feature's values as labels: numbers as floats' text (the engine reads JSON numbers as
    doubles, a spec's levels may be integers: 1 and 1.0 are one level), anything else as its text."""
    numbers = pd.to_numeric(values, errors="coerce")
    if numbers.notna().all():
        return np.asarray(numbers.to_numpy(dtype=np.float64).astype(str))
    return np.asarray(values.astype(str).to_numpy())


def assess(
    current: LiveSample,
    previous: LiveSample,
    spec: FeatureSpec | None,
    alpha: float = DEFAULT_ALPHA,
) -> tuple[dict[str, Any], dict[str, tuple[np.ndarray, np.ndarray, bool]]]:
    """Compare a window's inputs and scores with their references (no I/O).

    Args:
        current: the window's live sample.
        previous: the previous window's live sample (reference of the scores, and of the inputs
            without a spec).
        spec: the version's feature spec, or None.
        alpha: false-alarm level.

    Returns:
        The result (``verdict`` drift / no_drift / no_data, ``drifted``, ``no_data``, ``notes``,
        ``features``...) and the compared values per feature.
    """
    notes: list[str] = []
    pairs: dict[str, tuple[np.ndarray, np.ndarray, bool]] = {}
    if current.sampled:
        names = list(current.inputs.columns)
        kinds = {f.name: f.kind == "categorical" for f in spec.features} if spec is not None else {}
        cur = current.inputs
        if current.unmapped:
            notes.append(
                f"{current.unmapped} sampled input records did not map onto the {len(names)} features"
            )
        if spec is not None:
            ref = spec.sample(max(MIN_REFERENCE_ROWS, len(cur)), seed=0)
            notes.append(f"inputs: {len(cur)} sampled rows against {len(ref)} rows of the feature spec")
        else:
            ref = previous.inputs
            notes.append(
                f"inputs: {len(cur)} sampled rows against {len(ref)} of the previous window (no spec)"
            )
        for name in names:
            cat = kinds.get(name, False)
            r = ref[name].dropna() if name in ref else pd.Series([], dtype=np.float64)
            c = cur[name].dropna()
            r_arr = _labels(r) if cat else r.to_numpy(dtype=np.float64)
            c_arr = _labels(c) if cat else c.to_numpy(dtype=np.float64)
            pairs[name] = (r_arr, c_arr, cat)
    else:
        notes.append("no sampled inputs in the window (router input sampling off or no consenting units)")
    pairs[SCORE] = (previous.scores, current.scores, False)
    no_data = [n for n, (r, c, _) in pairs.items() if min(r.size, c.size) < MIN_SAMPLES]
    for name in no_data:
        notes.append(
            f"{name}: fewer than {MIN_SAMPLES} values (reference {pairs[name][0].size}, current {pairs[name][1].size})"
        )
        del pairs[name]
    if not pairs:
        result: dict[str, Any] = {"features": {}, "drift": False, "alpha": alpha, "verdict": "no_data"}
    else:
        result = compare(pairs, alpha)
        result["verdict"] = "drift" if result["drift"] else "no_drift"
    result.update(
        drifted=[n for n, f in result["features"].items() if f["drift"]],
        no_data=no_data,
        notes=notes,
        n_current_inputs=current.sampled,
        n_current_scores=int(current.scores.size),
    )
    return result, pairs


def _spec(version_tags: dict[str, str], tracking_uri: str) -> FeatureSpec | None:
    from modelgate_contracts.tags import FEATURE_SPEC

    uri = version_tags.get(FEATURE_SPEC)
    if not uri:
        return None
    import mlflow

    from include.synthetic import FeatureSpec

    with tempfile.TemporaryDirectory() as tmp:
        return FeatureSpec.from_json(
            mlflow.artifacts.download_artifacts(
                artifact_uri=uri, dst_path=tmp, tracking_uri=tracking_uri, registry_uri=tracking_uri
            )
        )


def _log_run(
    client: MlflowClient,
    model: str,
    version: str,
    result: dict[str, Any],
    pairs: dict[str, tuple[np.ndarray, np.ndarray, bool]],
) -> str:
    """Log the check as a run of :data:`EXPERIMENT` through ``client``; return the run id.

    The run goes through the explicit client (create, log, terminate), never the fluent API:
    ``mlflow.set_tracking_uri`` and ``mlflow.start_run`` would set process-global state
    (``MLFLOW_TRACKING_URI`` in ``os.environ``, the active run).
    """
    import time

    from mlflow.entities import Metric

    from include.drift.report import render

    exp = client.get_experiment_by_name(EXPERIMENT)
    exp_id = exp.experiment_id if exp is not None else client.create_experiment(EXPERIMENT)
    tags = {"modelgate.model_name": model, "modelgate.version": version, TAG_VERDICT: result["verdict"]}
    run_id: str = client.create_run(exp_id, run_name=f"drift-{model}-v{version}", tags=tags).info.run_id
    try:
        now_ms = int(time.time() * 1000)
        metrics = [Metric(f"p_{n}", float(f["p_value"]), now_ms, 0) for n, f in result["features"].items()]
        if metrics:
            client.log_batch(run_id, metrics=metrics)
        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / "results.json").write_text(json.dumps(result, indent=1, allow_nan=False))
            (Path(tmp) / "report.html").write_text(render(f"{model} v{version}", result, pairs))
            client.log_artifacts(run_id, tmp)
    except BaseException:
        client.set_terminated(run_id, "FAILED")
        raise
    client.set_terminated(run_id, "FINISHED")
    return run_id


def alert(record: dict[str, Any]) -> None:
    """Call the alert callback (``MODELGATE_DRIFT_ALERT``); a failing callback is logged, never raised.

    Args:
        record: the alert (``event`` = ``drift``, ``model``, ``version``, ``drifted``, ``run_id``...).
    """
    from include.callbacks import load_callable
    from include.config import get_settings

    path = get_settings().drift_alert or DEFAULT_ALERT
    try:
        load_callable(path)(record)
    except Exception:  # a broken notifier must not hide the verdict, which is already tagged
        log.exception("drift alert callback %s failed", path)


def check(
    model: str,
    events_root: str,
    end: datetime | None = None,
    window_hours: float = 24.0,
    alpha: float = DEFAULT_ALPHA,
    tracking_uri: str | None = None,
    actor: str = "drift_monitoring",
    run_id: str | None = None,
) -> dict[str, Any]:
    """Check the champion of ``model`` for drift over the window ending at ``end``; log, tag and alert.

    Args:
        model: the registered model name.
        events_root: the router's events root (a local folder).
        end: end of the window (default now).
        window_hours: window length; the scores' reference is the window before it.
        alpha: false-alarm level.
        tracking_uri: the MLflow server, used as a value (nothing process-global is set); None: the
            settings' ``MODELGATE_TRACKING_URI``, for CLIs.
        actor: who sets the tags (audit log).
        run_id: the Airflow run id (audit log).

    Returns:
        A summary: ``model``, ``version``, ``verdict``, ``drifted``, ``run_id`` (MLflow), ``no_data``.
    """
    from include.config import get_settings
    from include.registry import registry as reg

    uri = tracking_uri or get_settings().tracking_uri
    client = reg.get_client(uri)
    version = reg.get_alias_version(model, "champion", uri)
    if version is None:
        log.info("%s has no champion: nothing to check", model)
        return {"model": model, "version": None, "verdict": "no_champion", "drifted": []}
    tags = dict(client.get_model_version(model, version).tags)
    end = end or datetime.now(UTC)
    start, before = end - timedelta(hours=window_hours), end - timedelta(hours=2 * window_hours)
    spec = _spec(tags, uri)
    current = read_window(events_root, model, version, start, end, spec.feature_names if spec else None)
    previous = read_window(events_root, model, version, before, start, list(current.inputs.columns))
    result, pairs = assess(current, previous, spec, alpha)
    result.update(model=model, version=version, window=[start.isoformat(), end.isoformat()])
    mlflow_run = _log_run(client, model, version, result, pairs)
    reg.set_version_tags(
        model,
        version,
        {
            TAG_VERDICT: result["verdict"],
            TAG_CHECKED_AT: end.isoformat(),
            TAG_DRIFTED: json.dumps(result["drifted"])[:4000],
            TAG_RUN_ID: mlflow_run,
            TAG_WINDOW: f"{start.isoformat()}/{end.isoformat()}",
        },
        actor=actor,
        run_id=run_id,
        tracking_uri=uri,
    )
    summary = {
        "model": model,
        "version": version,
        "verdict": result["verdict"],
        "drifted": result["drifted"],
        "no_data": result["no_data"],
        "run_id": mlflow_run,
    }
    if result["verdict"] == "drift":
        alert({"event": "drift", "ts": datetime.now(UTC).isoformat(), **summary})
    return summary


def champion_models(tracking_uri: str | None = None) -> list[str]:
    """Return the registered models that have a ``champion`` alias.

    Args:
        tracking_uri: MLflow tracking URI.

    Returns:
        Model names, sorted.
    """
    from include.registry import registry as reg

    client = reg.get_client(tracking_uri)
    return sorted(m.name for m in client.search_registered_models() if "champion" in (m.aliases or {}))
