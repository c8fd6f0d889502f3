"""drift_monitoring with dag.test() against a real MLflow server: report, tags, alert and Asset event."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from support import make_logreg_onnx
from support_airflow import run_dag, task_states
from support_drift import write_events

from include.drift import monitor
from include.registry import registry as reg
from include.synthetic import FeatureSpec

pytestmark = pytest.mark.integration

DAG_FILE, DAG_ID = "drift_monitoring.py", "drift_monitoring"
END = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def _asset_events(run_id: str) -> list[dict[str, Any]]:
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session

    with create_session() as s:
        rows = (
            s.query(AssetEvent, AssetModel)
            .join(AssetModel, AssetEvent.asset_id == AssetModel.id)
            .filter(AssetEvent.source_run_id == run_id)
            .all()
        )
        return [{"name": a.name, "extra": e.extra} for e, a in rows]


def _register(tmp_path: Path, name: str) -> FeatureSpec:
    rng = np.random.default_rng(0)
    ref = pd.DataFrame({f"x{i}": rng.normal(size=3000) for i in range(4)})
    spec = FeatureSpec.fit(ref)
    spec.to_json(tmp_path / "feature_spec.json")
    model = make_logreg_onnx(tmp_path / "m.onnx", n_features=4)
    reg.register_model(name, model, actor="tester", feature_spec_path=tmp_path / "feature_spec.json")
    reg.set_alias(name, "champion", "1", actor="tester")
    return spec


def _live(spec: FeatureSpec, root: Path, name: str, shift: float) -> None:
    rng = np.random.default_rng(5)
    for start, seed in ((END - timedelta(hours=2), 1), (END - timedelta(hours=1), 2)):
        rows = spec.sample(1500, seed=seed)
        if start == END - timedelta(hours=1):
            rows["x2"] += shift
        inputs = [json.dumps({"input": r}) for r in rows.to_numpy().tolist()]
        inputs = [s if i % 3 == 0 else None for i, s in enumerate(inputs)]  # a sampled share of requests
        scores = rng.beta(2, 5, 1500)
        write_events(root, name, "1", start, scores, [None, *inputs[1:]] if inputs else None)


def test_drift_in_one_input_is_reported_tagged_alerted_and_published(
    tracking_uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = f"drift-{uuid.uuid4().hex[:8]}"
    spec = _register(tmp_path, name)
    events = tmp_path / "events"
    _live(spec, events, name, shift=1.0)
    alerts = tmp_path / "alerts.jsonl"
    monkeypatch.setenv(monitor.ALERT_ENV, "include.canary.notify:append_jsonl")
    monkeypatch.setenv("MODELGATE_CANARY_NOTIFY_FILE", str(alerts))
    conf = {"models": [name], "events_root": str(events), "end": END.isoformat(), "window_hours": 1}
    dr = run_dag(DAG_FILE, DAG_ID, conf)
    assert dr.state == "success", task_states(dr)

    tags = reg.get_client().get_model_version(name, "1").tags
    assert tags[monitor.TAG_VERDICT] == "drift"
    assert json.loads(tags[monitor.TAG_DRIFTED]) == ["x2"]
    run_id = tags[monitor.TAG_RUN_ID]
    client = reg.get_client()
    assert {f.path for f in client.list_artifacts(run_id)} >= {"results.json", "report.html"}
    html = Path(client.download_artifacts(run_id, "report.html", str(tmp_path))).read_text()
    assert html.count("<img") == 5, "one plot per input feature and one for the score"
    results = json.loads(Path(client.download_artifacts(run_id, "results.json", str(tmp_path))).read_text())
    assert results["features"]["x2"]["drift"] and not results["features"]["x0"]["drift"]
    assert results["n_current_inputs"] == 499 and results["features"]["x2"]["n_current"] == 499

    (record,) = [json.loads(line) for line in alerts.read_text().splitlines()]
    assert record["event"] == "drift" and record["model"] == name and record["drifted"] == ["x2"]
    (event,) = _asset_events(dr.run_id)
    assert event["name"] == "modelgate_drift_checked"
    assert event["extra"]["verdicts"][0]["verdict"] == "drift"


def test_no_drift_sets_the_verdict_and_raises_no_alert(
    tracking_uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = f"nodrift-{uuid.uuid4().hex[:8]}"
    spec = _register(tmp_path, name)
    events = tmp_path / "events"
    _live(spec, events, name, shift=0.0)
    alerts = tmp_path / "alerts.jsonl"
    monkeypatch.setenv(monitor.ALERT_ENV, "include.canary.notify:append_jsonl")
    monkeypatch.setenv("MODELGATE_CANARY_NOTIFY_FILE", str(alerts))
    conf = {"models": [name], "events_root": str(events), "end": END.isoformat(), "window_hours": 1}
    dr = run_dag(DAG_FILE, DAG_ID, conf)
    assert dr.state == "success", task_states(dr)
    tags = reg.get_client().get_model_version(name, "1").tags
    assert tags[monitor.TAG_VERDICT] == "no_drift" and json.loads(tags[monitor.TAG_DRIFTED]) == []
    assert not alerts.exists()
