"""model_registration run with dag.test() against a real MLflow server."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from support import make_logreg_onnx
from support_airflow import run_dag, task_states

from include.registry import audit
from include.registry import registry as reg

pytestmark = pytest.mark.integration

DAG_FILE, DAG_ID = "model_registration.py", "model_registration"


def _versions(name: str) -> list:
    return reg.get_client().search_model_versions(f"name='{name}'")


def test_good_model_is_registered_then_second_becomes_challenger_and_rerun_does_not_duplicate(
    tracking_uri: str, tmp_path: Path
) -> None:
    name = f"dag-{uuid.uuid4().hex[:8]}"
    v1 = make_logreg_onnx(tmp_path / "v1.onnx", seed=1)
    dr = run_dag(DAG_FILE, DAG_ID, {"model_name": name, "artifact_uri": str(v1),
                                    "lineage": {"git_sha": "abc123"}, "actor": "ci-bot"})
    assert dr.state == "success", task_states(dr)
    mv = reg.get_client().get_model_version(name, "1")
    assert mv.tags["modelgate.lineage.git_sha"] == "abc123"
    assert mv.tags["modelgate.registered_by"] == "ci-bot"
    assert mv.tags["modelgate.airflow_run_id"] == dr.run_id
    assert reg.get_alias_version(name, "champion") == "1", "first version becomes champion"
    recs = [r for r in audit.read_records() if name in r.subject]
    assert {r.action for r in recs} == {"register", "set_alias", "model_registration"}
    alias_rec = next(r for r in recs if r.action == "set_alias")
    assert "first version" in alias_rec.after["reason"] and alias_rec.run_id == dr.run_id

    v2 = make_logreg_onnx(tmp_path / "v2.onnx", seed=2)
    dr2 = run_dag(DAG_FILE, DAG_ID, {"model_name": name, "artifact_uri": str(v2)})
    assert dr2.state == "success", task_states(dr2)
    assert reg.get_alias_version(name, "challenger") == "2"
    assert reg.get_alias_version(name, "champion") == "1"

    dr3 = run_dag(DAG_FILE, DAG_ID, {"model_name": name, "artifact_uri": str(v2)})
    assert dr3.state == "success"
    assert task_states(dr3)["emit_asset"] == "skipped", "no asset event for a duplicate"
    assert len(_versions(name)) == 2


def _assert_fails_cleanly(conf: dict, failing_task: str, name: str) -> None:
    dr = run_dag(DAG_FILE, DAG_ID, conf)
    states = task_states(dr)
    assert dr.state == "failed"
    assert states[failing_task] == "failed", states
    assert states["register_version"] in ("upstream_failed", "failed")
    assert _versions(name) == []


def test_bad_inputs_fail_with_a_clear_message_and_register_nothing(
    tracking_uri: str, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    name = f"bad-{uuid.uuid4().hex[:8]}"
    not_onnx = tmp_path / "model.onnx"
    not_onnx.write_bytes(b"PK\x03\x04 definitely not onnx" * 20)
    cases = [
        ({"model_name": name}, "validate_conf", "artifact_uri is required"),
        ({"model_name": name, "artifact_uri": str(tmp_path / "missing.onnx")}, "fetch_artifact", "missing.onnx"),
        ({"model_name": name, "artifact_uri": str(not_onnx)}, "validate_model", "not a valid ONNX model"),
        ({"model_name": "no spaces allowed", "artifact_uri": str(not_onnx)}, "validate_conf", "invalid model name"),
    ]
    for conf, task, message in cases:
        capfd.readouterr()
        _assert_fails_cleanly(conf, task, name)
        out, err = capfd.readouterr()
        assert message in out + err, f"{task}: expected {message!r} in the task log"
