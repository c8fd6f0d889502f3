"""The MLflow hook gives a task the connection's URI and identity without writing anything to os.environ."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from include.registry.credentials import current_identity, use_identity


def test_hook_uses_the_connection_identity_and_writes_no_credential_into_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from plugins.mlflow_hook import ModelgateMlflowHook

    secret = tmp_path / "mlflow-airflow-password"
    secret.write_text("s3cret-password-of-airflow\n")
    conn = {"conn_type": "http", "host": "127.0.0.1", "port": 5999, "login": "airflow",
            "extra": {"password_file": str(secret)}}  # fmt: skip
    monkeypatch.setenv("AIRFLOW_CONN_MODELGATE_MLFLOW", json.dumps(conn))
    for name in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://unused")
    monkeypatch.setenv("MODELGATE_TRACKING_URI", "http://unused")
    before = current_identity()  # the session's identity when an MLflow server fixture set one
    use_identity(None)
    try:
        uri = ModelgateMlflowHook().get_conn()
        assert uri == "http://127.0.0.1:5999"
        who = current_identity()
        assert who is not None and who.username == "airflow" and who.password == "s3cret-password-of-airflow"
        assert "s3cret" not in repr(who)
        assert not any("s3cret" in v for v in os.environ.values())
        assert "MLFLOW_TRACKING_PASSWORD" not in os.environ
        # every MLflow request of the process carries it
        from mlflow.tracking.request_header.registry import resolve_request_headers

        assert resolve_request_headers()["Authorization"] == who.authorization()
        use_identity(None)
        assert "Authorization" not in resolve_request_headers()
    finally:
        use_identity(before)


def test_a_connection_without_credentials_uses_the_airflow_password_file_of_the_secrets_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from include.registry.credentials import ensure_password
    from plugins.mlflow_hook import ModelgateMlflowHook

    monkeypatch.setenv("MODELGATE_SECRETS_DIR", str(tmp_path / "secrets"))
    expected = ensure_password(tmp_path / "secrets", "airflow")
    monkeypatch.setenv("AIRFLOW_CONN_MODELGATE_MLFLOW", "http://127.0.0.1:5998")  # as the production contract
    uri, who = ModelgateMlflowHook().connection()
    assert uri == "http://127.0.0.1:5998" and who == expected


DEAD = "http://127.0.0.1:9"  # nothing listens on the discard port: a client that reads the env fails at once


def test_get_conn_returns_the_connection_uri_and_leaves_os_environ_unchanged(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from plugins.mlflow_hook import ModelgateMlflowHook

    monkeypatch.setenv("AIRFLOW_CONN_MODELGATE_MLFLOW", "http://127.0.0.1:5997")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", DEAD)
    monkeypatch.setenv("MODELGATE_TRACKING_URI", DEAD)
    before = dict(os.environ)
    previous = current_identity()
    try:
        assert ModelgateMlflowHook().get_conn() == "http://127.0.0.1:5997"
        assert dict(os.environ) == before
    finally:
        use_identity(previous)


@pytest.mark.integration
def test_steps_given_an_explicit_uri_talk_to_it_while_the_environment_points_at_a_dead_server(
    mlflow_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Registration, alias, regression target and first-version verdict, canary tags, a drift check (spec
    download, report run, version tags) and the A/B report run: all on the URI passed."""
    import uuid
    from datetime import UTC, datetime, timedelta

    import numpy as np
    import pandas as pd
    from support import make_logreg_onnx
    from support_drift import write_events

    from include.abtest.report import log_to_mlflow
    from include.canary import state
    from include.config import get_settings
    from include.drift import monitor
    from include.drift import steps as drift_steps
    from include.registry import registry as reg
    from include.registry import steps as reg_steps
    from include.regression import steps as rt_steps
    from include.synthetic import FeatureSpec
    from modelgate_contracts.tags import FEATURE_SPEC

    for name in ("MLFLOW_TRACKING_URI", "MODELGATE_TRACKING_URI"):
        monkeypatch.setenv(name, DEAD)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # a wrong server fails fast, not after retries
    model = f"explicit-{uuid.uuid4().hex[:8]}"
    box = get_settings().home / "inbox" / model
    box.mkdir(parents=True)
    onnx_path = make_logreg_onnx(box / "m.onnx", seed=3)
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({f"x{i}": rng.normal(size=500) for i in range(4)})
    spec_json = FeatureSpec.fit(frame).to_json(box / "spec.json")
    end = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
    for hours_before in (2, 1):  # scores only (no sampled inputs): the score is compared, inputs are no_data
        write_events(tmp_path / "events", model, "1", end - timedelta(hours=hours_before),
                     rng.beta(2, 5, 200), None)  # fmt: skip
    before = dict(os.environ)

    conf = {"model_name": model, "artifact_uri": str(onnx_path), "feature_spec_uri": str(spec_json)}
    req = reg_steps.validate(conf, "tester", "explicit-run")
    staged = reg_steps.stage(req, "tester", "explicit-run", mlflow_server)
    registered = reg_steps.register(req, staged, "tester", "explicit-run", mlflow_server)
    aliased = reg_steps.assign_alias(registered, "tester", "explicit-run", mlflow_server)
    target = rt_steps.resolve({"model_name": model, "version": registered.version}, [], mlflow_server)
    assert not rt_steps.record_first_version(target, "tester", "explicit-run", mlflow_server)
    tags = state.version_tags(model, registered.version, mlflow_server)
    window = drift_steps.Window(str(tmp_path / "events"), end.isoformat(), 1.0, 0.05)
    checked = drift_steps.check(model, window, mlflow_server, "tester", "explicit-run")
    results = {"experiment": model, "model": model, "alpha": 0.05, "window": ["a", "b"], "srm": None,
               "decision": {"decision": "keep_running", "winner": None}, "variants": [{"name": "a", "units": 3}],
               "metrics": [{"role": "primary", "name": "ctr", "comparisons": []}]}  # fmt: skip
    ab_run = log_to_mlflow(results, "<html></html>", "explicit-run", mlflow_server)["run_id"]

    assert registered.created and aliased.alias == "champion" and target.first_version
    assert tags == {}, "no canary tags on a fresh version, read from the server passed"
    assert reg.get_alias_version(model, "champion", mlflow_server) == registered.version
    client = reg.get_client(mlflow_server)
    mv = client.get_model_version(model, registered.version)
    assert mv.tags["modelgate.regression.verdict"] == "pass"
    assert checked.version == registered.version and checked.verdict == "no_drift" and checked.run_id
    assert FEATURE_SPEC in mv.tags, "so the check downloaded the version's spec from the server passed"
    assert mv.tags[monitor.TAG_RUN_ID] == checked.run_id
    drift_run = client.get_run(checked.run_id)
    assert drift_run.info.status == "FINISHED" and drift_run.data.tags[monitor.TAG_VERDICT] == "no_drift"
    assert f"p_{monitor.SCORE}" in drift_run.data.metrics
    assert {f.path for f in client.list_artifacts(checked.run_id)} == {"results.json", "report.html"}
    assert client.get_run(ab_run).info.status == "FINISHED"
    assert dict(os.environ) == before, "no step wrote the tracking URI (or anything) into os.environ"
