"""model_registration run with dag.test() against a real MLflow server."""

from __future__ import annotations

import hashlib
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from support import make_logreg_onnx
from support_airflow import run_dag, task_states

from include.config import get_settings
from include.registry import audit
from include.registry import registry as reg

pytestmark = pytest.mark.integration

DAG_FILE, DAG_ID = "model_registration.py", "model_registration"


def _versions(name: str) -> list:
    return reg.get_client().search_model_versions(f"name='{name}'")


def _inbox_dir() -> Path:
    d = get_settings().home / "inbox" / uuid.uuid4().hex[:8]
    d.mkdir(parents=True)
    return d


def _xcom(dr: Any, task_id: str) -> Any:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = session.query(XComModel).filter_by(dag_id=DAG_ID, run_id=dr.run_id, task_id=task_id,
                                                 key="return_value").one()
        return row.value


def _staging_left(dr: Any) -> bool:
    from include.registry.steps import staging_dir

    return staging_dir(dr.run_id).exists()


def _expected_actor(dr: Any) -> str:
    return dr.triggering_user_name or f"airflow:{DAG_ID}"


def test_good_model_is_registered_then_second_becomes_challenger_and_rerun_does_not_duplicate(
    tracking_uri: str,
) -> None:
    name = f"dag-{uuid.uuid4().hex[:8]}"
    box = _inbox_dir()
    v1 = make_logreg_onnx(box / "v1.onnx", seed=1)
    dr = run_dag(DAG_FILE, DAG_ID, {"model_name": name, "artifact_uri": str(v1), "lineage": {"git_sha": "abc123"}})
    assert dr.state == "success", task_states(dr)
    mv = reg.get_client().get_model_version(name, "1")
    assert mv.tags["modelgate.lineage.git_sha"] == "abc123"
    assert mv.tags["modelgate.registered_by"] == _expected_actor(dr)
    assert mv.tags["modelgate.airflow_run_id"] == dr.run_id
    assert mv.tags["modelgate.sha256"] == hashlib.sha256(v1.read_bytes()).hexdigest()
    assert reg.get_alias_version(name, "champion") == "1", "first version becomes champion"

    staged = _xcom(dr, "stage")
    assert staged["model_uri"].startswith("runs:/") and staged["sha256"] == mv.tags["modelgate.sha256"]
    assert str(get_settings().home) not in json.dumps(staged), "XCom carries references, not local paths"
    assert not _staging_left(dr)

    recs = [r for r in audit.read_records() if r.run_id == dr.run_id]
    assert sorted(r.action for r in recs) == ["register", "set_alias"], "one audit record per change"
    assert all(r.actor == _expected_actor(dr) for r in recs)
    assert "first version" in next(r for r in recs if r.action == "set_alias").after["reason"]

    v2 = make_logreg_onnx(box / "v2.onnx", seed=2)
    dr2 = run_dag(DAG_FILE, DAG_ID, {"model_name": name, "artifact_uri": "/".join(v2.parts[-2:])})
    assert dr2.state == "success", task_states(dr2)
    assert reg.get_alias_version(name, "challenger") == "2", "a name relative to the inbox works"
    assert reg.get_alias_version(name, "champion") == "1"

    dr3 = run_dag(DAG_FILE, DAG_ID, {"model_name": name, "artifact_uri": str(v2)})
    assert dr3.state == "success"
    assert task_states(dr3)["emit_asset"] == "skipped", "no asset event for a duplicate"
    assert len(_versions(name)) == 2
    assert [r for r in audit.read_records() if r.run_id == dr3.run_id] == [], "no change, no record"
    assert audit.verify().ok


def _assert_refused(conf: dict, failing_task: str, name: str, message: str, capfd: pytest.CaptureFixture[str]) -> None:
    capfd.readouterr()
    dr = run_dag(DAG_FILE, DAG_ID, conf)
    out, err = capfd.readouterr()
    states = task_states(dr)
    assert dr.state == "failed"
    assert states[failing_task] == "failed", states
    assert states["register_version"] in ("upstream_failed", "failed")
    assert message in out + err, f"{failing_task}: expected {message!r} in the task log"
    assert _versions(name) == []
    assert not _staging_left(dr)
    refusals = [r for r in audit.read_records() if r.run_id == dr.run_id]
    assert [r.action for r in refusals] == ["model_registration.refused"], refusals
    assert refusals[0].after["step"] == failing_task
    assert message in json.dumps(refusals[0].after)


@pytest.mark.parametrize("uri", ["/etc/passwd", "file:///etc/passwd", "http://127.0.0.1:1/x"])
def test_hostile_artifact_uris_are_refused_and_leave_no_version_no_staging_and_an_audit_record(
    tracking_uri: str, capfd: pytest.CaptureFixture[str], uri: str
) -> None:
    name = f"hostile-{uuid.uuid4().hex[:8]}"
    _assert_refused({"model_name": name, "artifact_uri": uri}, "validate_conf", name, "source_refused", capfd)


def test_a_hostile_feature_spec_uri_is_refused(tracking_uri: str, capfd: pytest.CaptureFixture[str]) -> None:
    name = f"hostile-{uuid.uuid4().hex[:8]}"
    model = make_logreg_onnx(_inbox_dir() / "m.onnx", seed=3)
    conf = {"model_name": name, "artifact_uri": str(model), "feature_spec_uri": "/etc/passwd"}
    _assert_refused(conf, "validate_conf", name, "feature_spec_uri '/etc/passwd' is outside the allowed roots", capfd)


def test_bad_inputs_fail_with_a_clear_message_and_register_nothing(
    tracking_uri: str, capfd: pytest.CaptureFixture[str]
) -> None:
    name = f"bad-{uuid.uuid4().hex[:8]}"
    box = _inbox_dir()
    not_onnx = box / "model.onnx"
    not_onnx.write_bytes(b"PK\x03\x04 definitely not onnx" * 20)
    cases = [
        ({"model_name": name}, "validate_conf", "artifact_uri is required"),
        ({"model_name": name, "artifact_uri": str(box / "missing.onnx")}, "stage", "missing.onnx"),
        ({"model_name": name, "artifact_uri": str(not_onnx)}, "stage", "not a valid ONNX model"),
        ({"model_name": "no spaces allowed", "artifact_uri": str(not_onnx)}, "validate_conf", "invalid model name"),
        ({"model_name": name, "artifact_uri": str(not_onnx), "actor": "ceo"}, "validate_conf", "authenticated user"),
    ]
    for conf, task, message in cases:
        _assert_refused(conf, task, name if " " not in conf["model_name"] else "no spaces allowed", message, capfd)
