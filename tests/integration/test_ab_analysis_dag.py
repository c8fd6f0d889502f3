"""ab_analysis with dag.test(): the paths that need no human, the ship gate answered by a person through
the REST API of a real api-server, and the approval outcomes through the DAG's own step functions,
against a real MLflow registry and a real router.

A ``ship`` parks ``ship_gate.approve`` (an ``ApprovalOperator``) in AWAITING_INPUT and ``dag.test()``
waits; an :class:`support_hitl.Approver` thread answers it with
``PATCH /api/v2/dags/ab_analysis/dagRuns/{run_id}/taskInstances/ship_gate.approve/{map_index}/hitlDetails``
on an api-server sharing the tests' metadata DB, logged in as a named user. The same outcomes (and the
timeout) are also checked by calling ``pipeline.promote_winner`` and ``pipeline.record_outcome``
directly with the answers ``ApprovalOperator`` returns.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from support import REPO, make_logreg_onnx, python_file_cmd, stop
from support_airflow import copy_migrated_db, run_dag, task_states
from support_hitl import ApiServer, Approver

sys.path.insert(0, str(REPO / "tests" / "include" / "abtest"))
from ab_support import START, experiment_doc

from modelgate_dev.abtest.generate import Population, generate

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("_api_server_process")]

DAG_FILE = REPO / "dags" / "ab_analysis.py"
DAG_ID = "ab_analysis"

_DRIVER = r"""
import json, sys
from airflow.dag_processing.bundles.manager import DagBundlesManager
from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db
from airflow.models.xcom import XComModel
from airflow.utils.session import create_session

bag = DagBag(dag_folder=sys.argv[1])
assert not bag.import_errors, bag.import_errors
DagBundlesManager().sync_bundles_to_db()
sync_bag_to_db(bag, bundle_name="dags-folder", bundle_version=None)
dr = bag.dags["ab_analysis"].test(run_conf=json.loads(sys.argv[2]))
with create_session() as s:
    tis = {f"{ti.task_id}[{ti.map_index}]": str(ti.state) for ti in dr.get_task_instances(session=s)}
    xcoms = {f"{x.task_id}[{x.map_index}]:{x.key}": x.value for x in s.query(XComModel).filter_by(run_id=dr.run_id)}
print("RESULT " + json.dumps({"state": str(dr.state), "tis": tis, "xcoms": xcoms}, default=str))
"""


@pytest.fixture(scope="module")
def airflow_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    home = tmp_path_factory.mktemp("airflow_home")
    env = dict(os.environ)
    env.update(
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__DAGS_FOLDER=str(REPO / "dags"),
        AIRFLOW__CORE__UNIT_TEST_MODE="False",
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{home / 'airflow.db'}",
        PYTHONPATH=os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]),
    )
    copy_migrated_db(home / "airflow.db")  # what `airflow db migrate` writes, without running it again
    return env


def _write_experiment(folder: Path, doc: dict[str, Any]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{doc['id']}.yaml").write_text(yaml.safe_dump(doc))


def test_dag_analyses_each_active_experiment_and_logs_the_report_without_waiting(
    tmp_path: Path, airflow_env: dict[str, str], mlflow_server: str
) -> None:
    data = tmp_path / "data"
    # SRM: the traffic is split 60/40 against configured 50/50 -> invalid, no approval requested
    g = generate(
        Population(n_units=6000, variants={"a": 60, "b": 40}, lifts={"b": 0.3}, seed=2), data, START, days=2
    )
    exps = tmp_path / "experiments"
    _write_experiment(exps, experiment_doc(id="srm-exp", outcomes={"path": "outcomes.parquet"}))
    _write_experiment(exps, experiment_doc(id="aa-exp", active=False))
    conf = {"experiments_dir": str(exps), "events_root": str(g.events_root), "data_root": str(data),
            "as_of": (START + timedelta(days=2)).isoformat()}  # fmt: skip
    env = {**airflow_env, "MODELGATE_TRACKING_URI": mlflow_server, "MLFLOW_TRACKING_URI": mlflow_server,
           "MODELGATE_HOME": str(tmp_path / "home")}  # fmt: skip
    res = subprocess.run([*python_file_cmd(_DRIVER, tmp_path), str(DAG_FILE), json.dumps(conf)], env=env, cwd=REPO,
                         capture_output=True, text=True, timeout=400)  # fmt: skip
    lines = [ln for ln in res.stdout.splitlines() if ln.startswith("RESULT ")]
    assert lines, (res.stdout + res.stderr)[-5000:]
    out = json.loads(lines[-1][len("RESULT ") :])
    assert out["state"] == "success", out
    assert out["tis"]["list_experiments[-1]"] == "success"
    assert out["tis"]["analyse[0]"] == "success"
    assert "analyse[1]" not in out["tis"]  # the inactive experiment is not analysed
    summary = out["xcoms"]["analyse[0]:return_value"]
    assert summary["experiment"] == "srm-exp" and summary["decision"] == "invalid: SRM"
    assert out["xcoms"]["ship_candidates[-1]:return_value"] == []
    # the extra link holds the MLflow run URL
    assert out["xcoms"]["analyse[0]:_link_MlflowReportLink"] == summary["run_url"]
    # results and report are in MLflow
    from mlflow.tracking import MlflowClient

    client = MlflowClient(mlflow_server)
    run = client.get_run(summary["run_id"])
    assert run.data.tags["modelgate.abtest.decision"] == "invalid: SRM"
    assert run.data.metrics["srm_p_value"] < 0.001
    local = Path(client.download_artifacts(summary["run_id"], "report.html", str(tmp_path)))
    page = local.read_text()
    assert page.count("data:image/png;base64,") == 3 and "MISMATCH" in page
    results = json.loads(
        Path(client.download_artifacts(summary["run_id"], "results.json", str(tmp_path))).read_text()
    )
    assert results["decision"]["decision"] == "invalid: SRM"


@pytest.fixture
def promotion_env(tmp_path: Path, tracking_uri: str, monkeypatch: pytest.MonkeyPatch):
    """A registered model with two versions, a real router serving both, and the audit log."""
    from serving.conftest import ADMIN_TOKEN, start_router

    from include.registry import registry as reg

    # one model per test: pytest truncates tmp_path names, so two tests could share a name (and an
    # experiment concluded by one would be "concluded" in the next)
    name = f"abchurn{uuid.uuid4().hex[:12]}"
    v1 = make_logreg_onnx(tmp_path / "v1.onnx", seed=1)
    v2 = make_logreg_onnx(tmp_path / "v2.onnx", seed=2)
    ver1 = str(reg.register_model(name, v1, actor="test").version)
    ver2 = str(reg.register_model(name, v2, actor="test").version)
    reg.set_alias(name, "champion", ver1, actor="test")
    routes = {"models": {name: {"variants": [{"name": "a", "uri": str(v1), "weight_bp": 5000},
                                             {"name": "b", "uri": str(v2), "weight_bp": 5000}]}}}  # fmt: skip
    r = start_router(tmp_path / "router", routes)
    port = int(r.url.rsplit(":", 1)[1])
    monkeypatch.setenv("MODELGATE_ROUTER_URL", r.url)
    monkeypatch.setenv("ROUTER_ADMIN_TOKEN", ADMIN_TOKEN)
    monkeypatch.setenv("AIRFLOW_CONN_MODELGATE_ROUTER",
                       json.dumps({"conn_type": "http", "host": "127.0.0.1", "port": port, "password": ADMIN_TOKEN}))  # fmt: skip
    audit_url = f"sqlite:///{tmp_path / 'audit.db'}"
    monkeypatch.setenv("MODELGATE_AUDIT_DB_URL", audit_url)
    exps = tmp_path / "experiments"
    doc = experiment_doc(id="ship-exp", model=name,
                         variants=[{"name": "a", "weight": 1, "model_version": ver1},
                                   {"name": "b", "weight": 1, "model_version": ver2}])  # fmt: skip
    _write_experiment(exps, doc)
    yield {"name": name, "ver1": ver1, "ver2": ver2, "exps": exps, "audit_url": audit_url, "router": r}
    stop(r.proc)


def _summary(env: dict[str, Any], tracking_uri: str) -> dict[str, Any]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    eid = client.get_experiment_by_name("abtest/ship-exp")
    eid = eid.experiment_id if eid else client.create_experiment("abtest/ship-exp")
    run = client.create_run(eid, run_name="manual")
    return {"experiment": "ship-exp", "decision": "ship", "winner": "b", "winner_version": env["ver2"],
            "run_id": run.info.run_id, "reason": "test"}  # fmt: skip


def test_approval_promotes_the_winner_in_registry_and_router_with_audit_records(
    promotion_env, tracking_uri
) -> None:
    from include.abtest import pipeline
    from include.registry.audit import read_records, verify
    from include.registry.registry import get_alias_version
    from plugins.router_hook import RouterHook

    env = promotion_env
    summary = _summary(env, tracking_uri)
    answer = {"chosen_options": ["Approve"], "params_input": {"reason": "clear win"},
              "responded_by_user": {"id": "7", "name": "ana"}, "responded_at": "2026-12-05T10:00:00+00:00"}  # fmt: skip
    conf = {"experiments_dir": str(env["exps"])}
    done = pipeline.promote_winner(summary, answer, actor="airflow:ab_analysis", run_id="run-1",
                                   routes=RouterHook(actor="ana"), conf=conf)  # fmt: skip
    assert done["version"] == env["ver2"] and done["approved_by"] == "ana" and done["alias_moved"] is True
    assert get_alias_version(env["name"], "champion") == env["ver2"]
    routes = RouterHook().get_routes(env["name"])
    assert {v["name"]: v["weight_bp"] for v in routes["variants"]} == {"a": 0, "b": 10000}
    assert routes["champion"] == "b"
    rec = pipeline.record_outcome(summary, answer, done, actor="airflow:ab_analysis", run_id="run-1")
    assert rec["outcome"] == "approved" and rec["by"] == "ana"
    actions = [(r.actor, r.action, r.subject) for r in read_records(env["audit_url"])]
    assert ("ana", "set_alias", f"models:/{env['name']}@champion") in actions
    assert ("ana", "routes.put", f"routes:{env['name']}") in actions
    assert ("ana", "abtest.ship_decision", "abtest:ship-exp") in actions
    assert verify(env["audit_url"]).ok


class _Killed(BaseException):
    """The promote task's process died at a fault point (no ``except Exception`` catches it)."""


@pytest.mark.parametrize("point", ["abtest:marked", "abtest:routes_converged", "abtest:aliases_moved"])
def test_ship_killed_between_saga_steps_completes_once_and_the_experiment_is_concluded(
    promotion_env, tracking_uri, point
) -> None:
    from include.abtest import pipeline
    from include.abtest.decision import PromotionError
    from include.canary import hooks
    from include.registry.audit import read_records
    from include.registry.registry import get_alias_version
    from plugins.router_hook import RouterHook

    env = promotion_env
    summary = _summary(env, tracking_uri)
    answer = {"chosen_options": ["Approve"], "params_input": {"reason": "clear win"},
              "responded_by_user": {"id": "7", "name": "ana"}}  # fmt: skip
    conf = {"experiments_dir": str(env["exps"])}

    def kill(reached: str) -> None:
        if reached == point:
            raise _Killed(reached)

    undo = hooks.on_point(kill)
    try:
        with pytest.raises(_Killed):
            pipeline.promote_winner(summary, answer, actor="airflow:ab_analysis", run_id="run-1",
                                    routes=RouterHook(actor="ana"), conf=conf)  # fmt: skip
    finally:
        undo()
    # concluded from the first step: an analysis now reports it instead of an SRM on the new split
    again = pipeline.analyse("ship-exp", "later", conf, tracking_uri)
    assert again["decision"] == "concluded" and "shipping" in again["reason"] and again["run_id"] is None
    if point == "abtest:marked":
        assert get_alias_version(env["name"], "champion") == env["ver1"], "nothing served changed yet"
    done = pipeline.promote_winner(summary, answer, actor="airflow:ab_analysis", run_id="run-2",
                                   routes=RouterHook(actor="ana"), conf=conf)  # fmt: skip
    assert done["resumed"] is True and done["version"] == env["ver2"]
    assert get_alias_version(env["name"], "champion") == env["ver2"]
    assert get_alias_version(env["name"], "previous_champion") == env["ver1"]
    routes = RouterHook().get_routes(env["name"])
    assert {v["name"]: v["weight_bp"] for v in routes["variants"]} == {"a": 0, "b": 10000}
    assert routes["champion"] == "b"
    with pytest.raises(PromotionError, match="an experiment ships once"):
        pipeline.promote_winner(summary, answer, actor="airflow:ab_analysis", run_id="run-3",
                                routes=RouterHook(actor="ana"), conf=conf)  # fmt: skip
    later = pipeline.analyse("ship-exp", "later", conf, tracking_uri)
    assert later["decision"] == "concluded" and "shipped b" in later["reason"]
    records = read_records(env["audit_url"])
    assert [r.action for r in records].count("abtest.concluded") == 1, "one ship"
    moves = [(r.subject.rsplit("@", 1)[1], r.after["version"]) for r in records if r.action == "set_alias"]
    assert moves == [("previous_champion", env["ver1"]), ("champion", env["ver2"])], "each alias moved once"


@pytest.mark.parametrize(
    ("answer", "outcome", "reason"),
    [
        ({"chosen_options": ["Reject"], "params_input": {"reason": "peak season"},
          "responded_by_user": {"id": "8", "name": "bo"}}, "rejected", "peak season"),
        ({"chosen_options": ["Reject"], "params_input": {"reason": ""}, "responded_by_user": None},
         "timed out", "no answer before the response timeout"),
    ],
)  # fmt: skip
def test_rejection_or_timeout_changes_nothing_and_records_the_reason(
    promotion_env, tracking_uri, answer, outcome, reason
) -> None:
    from mlflow.tracking import MlflowClient

    from include.abtest import pipeline
    from include.abtest.decision import PromotionError
    from include.registry.audit import read_records
    from include.registry.registry import get_alias_version
    from plugins.router_hook import RouterHook

    env = promotion_env
    summary = _summary(env, tracking_uri)
    with pytest.raises(PromotionError, match=f"not approved \\({outcome}\\)"):
        pipeline.promote_winner(summary, answer, actor="airflow:ab_analysis", run_id="run-2",
                                routes=RouterHook(), conf={"experiments_dir": str(env["exps"])})  # fmt: skip
    rec = pipeline.record_outcome(summary, answer, None, actor="airflow:ab_analysis", run_id="run-2")
    assert rec["outcome"] == outcome and rec["reason"] == reason
    assert get_alias_version(env["name"], "champion") == env["ver1"]
    routes = RouterHook().get_routes(env["name"])
    assert {v["name"]: v["weight_bp"] for v in routes["variants"]} == {"a": 5000, "b": 5000}
    records = read_records(env["audit_url"])
    # no alias move, no route change: only the recorded outcome (the fixture wrote to another log)
    assert [r.action for r in records] == ["abtest.ship_decision"]
    assert records[-1].after["outcome"] == outcome and records[-1].after["reason"] == reason
    tags = MlflowClient(tracking_uri).get_run(summary["run_id"]).data.tags
    assert tags["modelgate.abtest.approval"] == outcome


def _run_ship_gate(env: dict[str, Any], tmp_path: Path, api_server: ApiServer, user: str,
                   answer: dict[str, Any]) -> tuple[Any, dict[str, str], dict[str, Any], Approver]:  # fmt: skip
    """Run the DAG on an experiment whose data says ``ship`` (b converts 25 % more, SRM-free) while
    ``user`` answers the ship gate through the REST API; return the run, its task states, the
    analysis summary and the approver."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    data = tmp_path / "data"
    g = generate(Population(n_units=40_000, variants={"a": 1, "b": 1}, lifts={"b": 0.25}, model=env["name"],
                            seed=11), data, START, days=3)  # fmt: skip
    conf = {"experiments_dir": str(env["exps"]), "events_root": str(g.events_root), "data_root": str(data),
            "as_of": (START + timedelta(days=3)).isoformat()}  # fmt: skip
    approver = Approver(api_server, DAG_ID, {"ship_gate.approve": answer}, user=user)
    approver.start()
    try:
        dr = run_dag(DAG_FILE.name, DAG_ID, conf)
    finally:
        approver.finish()
    with create_session() as s:
        x = s.query(XComModel).filter_by(run_id=dr.run_id, task_id="analyse", map_index=0, key="return_value")
        summary = x.one().value
    summary = json.loads(summary) if isinstance(summary, str) else summary
    assert not approver.errors and not approver.answers, (approver.errors, approver.answers)
    return dr, task_states(dr), summary, approver


def test_ship_approved_through_the_rest_api_promotes_the_winner_and_audits_who_approved_and_why(
    promotion_env, tracking_uri: str, tmp_path: Path, api_server: ApiServer
) -> None:
    from mlflow.tracking import MlflowClient

    from include.registry.audit import read_records, verify
    from plugins.router_hook import RouterHook

    env = promotion_env
    answer = {"chosen_options": ["Approve"], "params_input": {"reason": "clear win on conversion"}}
    dr, states, summary, approver = _run_ship_gate(env, tmp_path, api_server, "ana", answer)
    assert summary["decision"] == "ship" and summary["winner"] == "b", summary
    form = approver.bodies["ship_gate.approve"]
    assert "proposal **ship `b`**" in form and "| conversion | primary | b |" in form, "evidence in the form"
    assert approver.responses["ship_gate.approve"]["responded_by"]["name"] == "ana"
    assert dr.state == "success", states
    assert [states[f"ship_gate.{t}"] for t in ("approve", "promote", "record")] == ["success"] * 3, states
    client = MlflowClient(tracking_uri)
    assert client.get_model_version_by_alias(env["name"], "champion").version == env["ver2"]
    routes = RouterHook().get_routes(env["name"])
    assert {v["name"]: v["weight_bp"] for v in routes["variants"]} == {"a": 0, "b": 10000}
    assert routes["champion"] == "b"
    records = {r.action: r for r in read_records(env["audit_url"]) if r.run_id == dr.run_id}
    assert records["set_alias"].actor == "ana" and records["set_alias"].after["version"] == env["ver2"]
    assert records["set_alias"].after["reason"] == "A/B ship-exp approved by ana: clear win on conversion"
    assert records["routes.put"].actor == "ana"
    decision = records["abtest.ship_decision"]
    assert (decision.actor, decision.subject) == ("ana", "abtest:ship-exp")
    assert (decision.after["outcome"], decision.after["by"], decision.after["reason"]) == (
        "approved", "ana", "clear win on conversion")  # fmt: skip
    assert decision.after["promoted"]["version"] == env["ver2"]
    assert verify(env["audit_url"]).ok
    tags = client.get_run(summary["run_id"]).data.tags
    assert tags["modelgate.abtest.approval"] == "approved"


def test_ship_rejected_through_the_rest_api_skips_promotion_and_records_who_rejected_and_why(
    promotion_env, tracking_uri: str, tmp_path: Path, api_server: ApiServer
) -> None:
    from mlflow.tracking import MlflowClient

    from include.registry.audit import read_records
    from plugins.router_hook import RouterHook

    env = promotion_env
    answer = {"chosen_options": ["Reject"], "params_input": {"reason": "peak season"}}
    dr, states, summary, approver = _run_ship_gate(env, tmp_path, api_server, "bo", answer)
    assert summary["decision"] == "ship", summary
    assert approver.responses["ship_gate.approve"]["responded_by"]["name"] == "bo"
    assert dr.state == "success", states
    assert [states[f"ship_gate.{t}"] for t in ("approve", "promote", "record")] == [
        "success", "skipped", "success"], states  # fmt: skip
    client = MlflowClient(tracking_uri)
    assert client.get_model_version_by_alias(env["name"], "champion").version == env["ver1"]
    routes = RouterHook().get_routes(env["name"])
    assert {v["name"]: v["weight_bp"] for v in routes["variants"]} == {"a": 5000, "b": 5000}
    records = read_records(env["audit_url"])
    assert [(r.actor, r.action, r.run_id) for r in records] == [("bo", "abtest.ship_decision", dr.run_id)]
    assert (records[0].after["outcome"], records[0].after["reason"], records[0].after["promoted"]) == (
        "rejected", "peak season", None)  # fmt: skip
    tags = client.get_run(summary["run_id"]).data.tags
    assert tags["modelgate.abtest.approval"] == "rejected"
    assert tags["modelgate.abtest.approval_reason"] == "peak season"
