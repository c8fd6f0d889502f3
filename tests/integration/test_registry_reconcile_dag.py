"""registry_reconcile with dag.test(): a hand-moved champion alias is moved back to what the routes serve;
a disagreement no rule settles fails the task with a message naming the model (the alert).

Real MLflow, a real router serving the model from the registry (its routes store is the audit
database the DAG reads), the audit log on SQLite.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from serving.conftest import ADMIN_TOKEN, start_router
from support import make_logreg_onnx, stop
from support_airflow import run_dag, task_states

from include.canary.routeplan import desired_routes
from include.registry import audit
from include.registry import registry as reg
from include.routing.client import RouterClient

pytestmark = pytest.mark.integration


def test_dag_moves_a_hand_moved_alias_back_and_fails_with_a_message_when_it_cannot_decide(
    tracking_uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    audit_url = f"sqlite:///{tmp_path / 'audit.db'}"
    monkeypatch.setenv("MODELGATE_AUDIT_DB_URL", audit_url)
    names = [f"rec-{uuid.uuid4().hex[:8]}" for _ in range(2)]
    for name in names:
        for i in (1, 2):
            reg.register_model(name, make_logreg_onnx(tmp_path / f"{name}-{i}.onnx", seed=i), actor="test")
        reg.set_alias(name, "champion", "1", actor="test")
    router = start_router(tmp_path / "router", {"models": {}}, extra_env={"MLFLOW_TRACKING_URI": tracking_uri,
                                                                          "ROUTER_STORE_URL": audit_url})  # fmt: skip
    try:
        port = int(router.url.rsplit(":", 1)[1])
        monkeypatch.setenv("AIRFLOW_CONN_MODELGATE_ROUTER", json.dumps(
            {"conn_type": "http", "host": "127.0.0.1", "port": port, "password": ADMIN_TOKEN}))  # fmt: skip
        client = RouterClient(router.url, ADMIN_TOKEN, actor="gate")
        for name in names:
            client.put_routes(name, desired_routes(None, name, "1", None, 0, None))
        reg.set_alias(names[0], "champion", "2", actor="mallory", reason="moved by hand")
        dr = run_dag("registry_reconcile.py", "registry_reconcile", {"models": [names[0]]})
        assert dr.state == "success", task_states(dr)
        assert reg.get_alias_version(names[0], "champion") == "1", "the alias mirrors the routes again"
        rec = [r for r in audit.read_records(audit_url) if r.action == "champion.reconcile"]
        assert [(r.subject, r.before, r.after["version"]) for r in rec] == [
            (f"models:/{names[0]}@champion", {"version": "2"}, "1")
        ]
        assert rec[0].actor in ("dag_test", "airflow:registry_reconcile"), "the triggering user or the DAG acts"

        # the second model's champion serves through an alias: the alias would decide what is served
        routes = client.get_routes(names[1])
        routes["variants"][0]["uri"] = f"models:/{names[1]}@champion"
        client.put_routes(names[1], routes)
        capfd.readouterr()
        dr = run_dag("registry_reconcile.py", "registry_reconcile", {"models": names})
        out, err = capfd.readouterr()
        assert dr.state == "failed" and task_states(dr)["reconcile"] == "failed"
        assert f"{names[1]}: champion variant 'champion' of {names[1]} serves models:/{names[1]}@champion" in out + err
        assert reg.get_alias_version(names[0], "champion") == "1"
    finally:
        stop(router.proc)
