"""regression_testing run with dag.test() against a real MLflow server, on the demo churn models.

The registry already refuses a changed signature without a major bump at registration (it
compares with the latest version), so the gate's contract check is defence in depth; to test it,
the no-bump case is produced by editing the registered version's ``modelgate.semver`` tag back to a
minor version (an audited tag change, as a hand-edited manifest would be).
"""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path
from typing import Any

import pytest
from support import REPO
from support_airflow import run_dag, task_states

from include.registry import audit
from include.registry import registry as reg

pytestmark = pytest.mark.integration

DAG_FILE, DAG_ID = "regression_testing.py", "regression_testing"
PREFIX = "modelgate.regression."


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from modelgate_dev.demo.models import make_nan_output_model, make_wrong_signature_model
    from modelgate_dev.demo.train import train_demo_models

    out = tmp_path_factory.mktemp("demo")
    art = train_demo_models(out)
    make_wrong_signature_model(out / "wrong-signature.onnx")
    make_nan_output_model(out / "nan-output.onnx")
    return art


@pytest.fixture(scope="module")
def model(demo: Any, mlflow_server: str) -> str:
    """A model with v1 (champion) registered with the demo feature spec."""
    name = f"reg-{uuid.uuid4().hex[:8]}"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", mlflow_server)
        mp.setenv("MODELGATE_TRACKING_URI", mlflow_server)
        v1 = reg.register_model(name, demo.v1_model, actor="test", feature_spec_path=demo.feature_spec)
        reg.set_alias(name, "champion", v1.version, actor="test", reason="first version")
    return name


@pytest.fixture
def policies(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, demo: Any, model: str) -> Path:
    """Repository defaults plus a model policy naming the demo holdout (smaller sample, loose latency floor:
    this shared 2-core machine is noisy; the latency rule itself is unit-tested)."""
    folder = tmp_path / "policies"
    folder.mkdir()
    shutil.copy(REPO / "policies" / "default.yaml", folder / "default.yaml")
    (folder / f"{model}.yaml").write_text(
        f"synthetic:\n  rows: 1000\nquality:\n  holdout_uri: {demo.holdout}\n"
        "latency:\n  runs: 200\n  min_budget_ms: 250.0\n"
    )
    monkeypatch.setenv("MODELGATE_POLICY_DIR", str(folder))
    return folder


def _register(name: str, path: Path, demo: Any) -> str:
    v = reg.register_model(name, path, actor="test", feature_spec_path=demo.feature_spec)
    reg.set_alias(name, "challenger", v.version, actor="test")
    return v.version


def _tags(name: str, version: str) -> dict[str, str]:
    return dict(reg.get_client().get_model_version(name, version).tags)


def _verdict_record(name: str, version: str, run_id: str) -> audit.AuditRecord:
    recs = [
        r for r in audit.read_records() if r.subject == f"models:/{name}/{version}" and r.run_id == run_id
    ]
    tag_recs = [r for r in recs if r.action == "set_tags" and PREFIX + "verdict" in r.after]
    assert tag_recs, "the tag change is audited"
    (verdict,) = [r for r in recs if r.action == "regression_verdict"]
    return verdict


def _events(run_id: str) -> list[dict[str, Any]]:
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


def _artifacts(run_id: str) -> set[str]:
    client = reg.get_client()
    out: set[str] = set()
    for folder in ("report", "expectations", "inputs", "scores"):
        out |= {f.path for f in client.list_artifacts(run_id, folder)}
    return out


def test_first_version_passes_without_comparison_and_emits_nothing(
    tracking_uri: str, policies: Path, model: str
) -> None:
    dr = run_dag(DAG_FILE, DAG_ID, {"model_name": model, "version": "1"})
    states = task_states(dr)
    assert dr.state == "success", states
    assert states["first_version"] == "success"
    assert states["check_contract"] == "skipped" and states["emit_passed"] == "skipped"
    tags = _tags(model, "1")
    assert tags[PREFIX + "verdict"] == "pass"
    assert "first version" in tags[PREFIX + "reasons"]
    assert _verdict_record(model, "1", dr.run_id).after["verdict"] == "pass"
    assert _events(dr.run_id) == []


def test_v2_against_v1_passes_with_every_figure_tagged_report_logged_and_asset_emitted(
    tracking_uri: str, policies: Path, model: str, demo: Any
) -> None:
    version = _register(model, demo.v2_model, demo)
    dr = run_dag(DAG_FILE, DAG_ID, {"model_name": model, "version": version})
    states = task_states(dr)
    assert dr.state == "success", states
    tags = _tags(model, version)
    assert tags[PREFIX + "verdict"] == "pass", tags.get(PREFIX + "reasons")
    for check in ("inputs", "contract", "outputs", "determinism", "quality", "latency"):
        assert tags[f"{PREFIX}{check}.status"] == "pass", (check, tags)
    # v2 behaves very differently from v1 (it is much better): drift is excused by the holdout
    assert tags[PREFIX + "agreement.status"] == "warn"
    assert tags[PREFIX + "distribution.status"] == "warn"
    assert float(tags[PREFIX + "agreement.rate"]) < 0.95
    assert float(tags[PREFIX + "distribution.psi"]) > 0.1
    assert float(tags[PREFIX + "quality.challenger_auc"]) > float(tags[PREFIX + "quality.champion_auc"]) + 0.1
    assert float(tags[PREFIX + "determinism.max_abs_diff"]) == 0.0
    assert tags[PREFIX + "champion_version"] == "1"
    rec = _verdict_record(model, version, dr.run_id)
    # the actor is whoever triggered the run (dag.test has no user: the DAG itself), never conf
    assert rec.actor == (dr.triggering_user_name or f"airflow:{DAG_ID}")
    assert rec.after["verdict"] == "pass" and rec.after["champion_version"] == "1"
    assert _events(dr.run_id) == [
        {"name": "modelgate_regression_passed", "extra": {"model_name": model, "version": version}}
    ]
    run_id = tags[PREFIX + "mlflow_run_id"]
    files = _artifacts(run_id)
    for f in (
        "report/report.json",
        "report/report.html",
        "expectations/inputs.html",
        "expectations/inputs.result.json",
        "expectations/outputs.html",
        "expectations/outputs.result.json",
        "inputs/inputs.parquet",
        "scores/champion.parquet",
        "scores/challenger.parquet",
    ):
        assert f in files, (f, files)
    import mlflow

    local = Path(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="report"))
    report = json.loads((local / "report.json").read_text())
    assert report["verdict"] == "pass" and {c["name"] for c in report["checks"]} >= {"agreement", "quality"}
    page = (local / "report.html").read_text()
    assert page.count("data:image/png;base64,") >= 3 and "http" not in page.split("<body>")[1][:2000]
    assert mlflow.get_run(run_id).data.metrics["quality.challenger_auc"] > 0.85


def _assert_fails(
    model: str, version: str, failing_check: str, message: str, capfd: pytest.CaptureFixture[str]
) -> dict[str, str]:
    capfd.readouterr()
    dr = run_dag(DAG_FILE, DAG_ID, {"model_name": model, "version": version})
    out, err = capfd.readouterr()
    states = task_states(dr)
    assert dr.state == "failed", states
    assert states["decide"] == "success" and states["emit_passed"] == "failed", states
    assert message in out + err, "the failing task's log names the reason"
    tags = _tags(model, version)
    assert tags[PREFIX + "verdict"] == "fail"
    assert tags[f"{PREFIX}{failing_check}.status"] == "fail"
    assert message in tags[PREFIX + "reasons"]
    rec = _verdict_record(model, version, dr.run_id)
    assert rec.after["verdict"] == "fail" and any(message in r for r in rec.after["reasons"])
    assert _events(dr.run_id) == []
    return tags


def test_changed_signature_without_major_bump_fails_on_the_contract(
    tracking_uri: str, policies: Path, model: str, demo: Any, capfd: pytest.CaptureFixture[str]
) -> None:
    version = _register(model, demo.out_dir / "wrong-signature.onnx", demo)
    assert _tags(model, version)["modelgate.semver"].startswith("2."), "the registry forced a major bump"
    reg.set_version_tags(model, version, {"modelgate.semver": "1.9.0"}, actor="test")
    tags = _assert_fails(model, version, "contract", "without a major semver bump", capfd)
    assert "changed shape [None, 30] -> [None, 29]" in tags[PREFIX + "contract.breaking_changes"]
    assert tags[PREFIX + "outputs.status"] == "skipped"


def test_model_with_nan_outputs_fails_on_the_output_expectations(
    tracking_uri: str, policies: Path, model: str, demo: Any, capfd: pytest.CaptureFixture[str]
) -> None:
    version = _register(model, demo.out_dir / "nan-output.onnx", demo)
    tags = _assert_fails(
        model, version, "outputs", "expect_column_values_to_not_be_null(probability_1)", capfd
    )
    assert tags[PREFIX + "contract.status"] == "pass"
    assert int(tags[PREFIX + "outputs.nonfinite_rows"]) > 100
    assert int(tags[PREFIX + "outputs.nonfinite_edge_cases"]) > 0, "edge cases reach the negative f00 region"


def test_conf_actor_is_refused_because_the_actor_is_the_triggering_user(
    tracking_uri: str, policies: Path, model: str, demo: Any, capfd: pytest.CaptureFixture[str]
) -> None:
    version = _register(model, demo.v2_model, demo)  # already registered (and tested) by an earlier test
    before = _tags(model, version)
    capfd.readouterr()
    dr = run_dag(DAG_FILE, DAG_ID, {"model_name": model, "version": version, "actor": "ci-bot"})
    out, err = capfd.readouterr()
    states = task_states(dr)
    assert dr.state == "failed", states
    assert states["resolve_target"] == "failed", states
    assert "conf.actor is not accepted" in out + err
    assert _tags(model, version) == before, "nothing was tested or recorded"
    assert not [r for r in audit.read_records() if r.run_id == dr.run_id or r.actor == "ci-bot"]
    assert _events(dr.run_id) == []
