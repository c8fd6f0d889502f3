"""canary_promotion with dag.test() against a real MLflow server, a real router and real traffic.

Each test registers its own model (v1 champion), starts a router serving ``models:/<name>/1`` from
the registry, sends traffic from the generator in a background thread, and runs the DAG with a short
test policy (two stages, 20 % and 100 %, bakes of a few seconds).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
import yaml
from serving.conftest import ADMIN_TOKEN, Router, start_router
from support import REPO, stop
from support_airflow import ensure_airflow_db, run_dag, task_states
from support_hitl import ApiServer, Approver

from include.canary import controller as cc
from include.canary import rollback as rb
from include.registry import audit
from include.registry import registry as reg
from include.routing.client import RouterClient
from include.synthetic.spec import FeatureSpec
from modelgate_dev.canary.faulty import make_erroring_model, make_shifted_model
from modelgate_dev.traffic.generator import TrafficConfig, TrafficThread

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("_api_server_process")]

DAG_FILE, DAG_ID = "canary_promotion.py", "canary_promotion"
BAKE = 2.0


@dataclass
class Env:
    """One test's model, router, policy and notification file."""

    name: str
    router: Router
    policy: Path
    notify: Path
    spec: FeatureSpec
    tmp: Path

    def register(self, path: Path) -> str:
        return str(reg.register_model(self.name, path, actor="test").version)

    def traffic(self, rate: float = 150, duration: float = 150) -> TrafficThread:
        cfg = TrafficConfig(self.router.url, self.name, rate=rate, duration_s=duration, n_units=500)
        return TrafficThread(cfg, self.spec).start()

    def routes(self) -> dict[str, Any]:
        r = RouterClient(self.router.url, ADMIN_TOKEN).get_routes(self.name)
        assert r is not None
        return r

    def tags(self, version: str) -> dict[str, str]:
        return cc.version_tags(self.name, version)

    def conf(self, version: str, **kw: Any) -> dict[str, Any]:
        return {
            "model_name": self.name,
            "version": version,
            **kw,
        }


def _policy(path: Path, **over: Any) -> Path:
    doc = {
        "stages": [20, 100],
        "bake_seconds": BAKE,
        "events_grace_seconds": 1.0,
        "judge": {"metrics": {m: {"min_samples": 30} for m in ("error_rate", "latency_ms", "score")}},
        "guard": {
            "enabled": True,
            "window": 50,
            "min_requests": 20,
            "max_error_rate": 0.1,
            "max_latency_ms": 250,
            "max_slow_rate": 0.5,
        },
        "on_rollback": "include.canary.notify:append_jsonl",
        "on_promote": "include.canary.notify:append_jsonl",
    }
    doc.update(over)
    path.write_text(yaml.safe_dump({"canary": doc}))
    return path


@pytest.fixture
def env(tracking_uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Env]:
    name = f"canary-{uuid.uuid4().hex[:8]}"
    rng = np.random.default_rng(0)
    spec = FeatureSpec.fit(pd.DataFrame(rng.normal(size=(400, 30)), columns=[f"f{i}" for i in range(30)]))
    v1 = make_shifted_model(tmp_path / "v1.onnx", seed=1, graph_name="v1")
    version = str(reg.register_model(name, v1, actor="test").version)
    reg.set_alias(name, "champion", version, actor="test")
    routes = {
        "models": {name: {"variants": [{"name": "champion", "uri": f"models:/{name}/1", "weight_bp": 10000}]}}
    }
    router = start_router(tmp_path / "router", routes)
    notify = tmp_path / "notify.jsonl"
    monkeypatch.setenv("MODELGATE_ROUTER_URL", router.url)
    monkeypatch.setenv("ROUTER_ADMIN_TOKEN", ADMIN_TOKEN)
    monkeypatch.setenv("MODELGATE_EVENTS_ROOT", str(router.events_root))
    monkeypatch.setenv("MODELGATE_CANARY_NOTIFY_FILE", str(notify))
    monkeypatch.delenv("AIRFLOW_CONN_MODELGATE_ROUTER", raising=False)
    policy = _policy(tmp_path / "policy.yaml")
    monkeypatch.setenv("MODELGATE_CANARY_POLICY", str(policy))  # operator setting; a conf only names policies
    yield Env(name, router, policy, notify, spec, tmp_path)
    stop(router.proc)


def _notifications(e: Env) -> list[dict[str, Any]]:
    return [json.loads(x) for x in e.notify.read_text().splitlines()] if e.notify.exists() else []


def _champion_only(e: Env, version: str) -> None:
    routes = e.routes()
    assert [(v["name"], v["uri"], v["weight_bp"]) for v in routes["variants"]] == [
        ("champion", f"models:/{e.name}/{version}", 10000)
    ], routes


def _served_versions(e: Env, n: int = 60) -> dict[str, int]:
    cfg = TrafficConfig(e.router.url, e.name, rate=200, duration_s=10, max_requests=n, seed=9)
    th = TrafficThread(cfg, e.spec).start()
    th._thread.join(15)
    return th.stop().by_version


def test_good_candidate_goes_through_every_stage_becomes_champion_and_rolls_back_in_one_command(
    env: Env,
) -> None:
    v2 = env.register(make_shifted_model(env.tmp / "v2.onnx", seed=1, graph_name="v2"))
    with env.traffic():
        dr = run_dag(DAG_FILE, DAG_ID, env.conf(v2))
    states = task_states(dr)
    assert dr.state == "success", states
    assert [states[f"judge_{i}"] for i in (1, 2)] == ["success", "success"]
    assert states["route_3"] == "skipped" and states["approval_1"] == "skipped"
    assert reg.get_alias_version(env.name, "champion") == v2
    assert reg.get_alias_version(env.name, "previous_champion") == "1"
    _champion_only(env, v2)
    tags = env.tags(v2)
    assert tags[cc.TAG_VERDICT] == "promoted" and tags[cc.TAG_PREVIOUS] == "1"
    for i, pct in ((1, 20), (2, 100)):
        s = json.loads(tags[f"modelgate.canary.stage_{i}"])
        assert (s["decision"], s["percent"]) == ("pass", pct) and s["n"]["canary"] >= 30, s
    s2 = json.loads(tags["modelgate.canary.stage_2"])
    assert s2["n"]["baseline"] >= 30, "at 100 % the baseline comes from the earlier stages"
    assert cc.read_lock(env.name) is None
    recs = [r for r in audit.read_records() if env.name in r.subject]
    assert [r.action for r in recs].count("canary.promote") == 1
    assert any(r.action == "routes.put" and r.run_id == dr.run_id for r in recs)
    # the actor is whoever triggered the run (dag.test has no user: the DAG itself), never conf
    assert {r.actor for r in recs if r.run_id == dr.run_id} == {dr.triggering_user_name or f"airflow:{DAG_ID}"}
    assert [n["event"] for n in _notifications(env)] == ["promote"]

    # running it again (the whole start and finish) changes nothing and promotes nothing twice
    router = RouterClient(env.router.url, ADMIN_TOKEN)
    again = cc.start(env.name, v2, cc.Ctx(router, "tester", "rerun"), str(env.policy))
    assert again["noop"] == f"canary of {env.name} version {v2} already ended: promoted"
    assert cc.finish(again, cc.Ctx(router, "tester", "rerun"))["verdict"] == "noop"
    assert cc.route_stage(again, 1, cc.Ctx(router, "tester", "rerun")) is None
    recs2 = [r for r in audit.read_records() if env.name in r.subject]
    assert len(recs2) == len(recs), "no new audit record: nothing changed"
    assert cc.read_lock(env.name) is None

    res = subprocess.run(
        [sys.executable, "-m", "include.canary.rollback", "--model", env.name, "--actor", "oncall"],
        cwd=REPO,
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["champion"] == "1"
    assert reg.get_alias_version(env.name, "champion") == "1"
    assert reg.get_alias_version(env.name, "previous_champion") == v2
    _champion_only(env, "1")
    assert _served_versions(env) == {"1": 60}
    assert env.tags(v2)[cc.TAG_VERDICT] == "rolled_back"
    assert any(r.action == "champion.rollback" and r.actor == "oncall" for r in audit.read_records()[-5:])


def test_failing_candidate_is_cut_by_the_guard_and_rolled_back_and_the_champion_serves_everything(
    env: Env,
) -> None:
    bad = env.register(make_erroring_model(env.tmp / "bad.onnx", seed=1, threshold=0.0))
    with env.traffic():
        dr = run_dag(DAG_FILE, DAG_ID, env.conf(bad))
    states = task_states(dr)
    assert dr.state == "failed" and states["finalize"] == "failed", states
    assert states["judge_1"] == "success" and states["route_2"] == "skipped"
    assert reg.get_alias_version(env.name, "champion") == "1"
    _champion_only(env, "1")
    assert _served_versions(env) == {"1": 60}, "after the rollback every request is served by the champion"
    tags = env.tags(bad)
    assert tags[cc.TAG_VERDICT] == "rolled_back"
    assert "router guard cut the canary" in tags[cc.TAG_REASON] and "error rate" in tags[cc.TAG_REASON]
    stage1 = json.loads(tags["modelgate.canary.stage_1"])
    assert stage1["decision"] == "rollback" and stage1["metrics"]["error_rate"] in ("High", "NoData")
    guard = httpx.get(
        f"{env.router.url}/admin/guard/events", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
    )
    assert any(e["model"] == env.name and e["version"] == bad for e in guard.json()["events"])
    rec = next(r for r in audit.read_records() if r.action == "canary.rollback" and env.name in r.subject)
    assert rec.run_id == dr.run_id and rec.after["stage"] == 1
    notes = _notifications(env)
    assert [n["event"] for n in notes] == ["rollback"] and notes[0]["version"] == bad
    assert cc.read_lock(env.name) is None


def test_conf_actor_is_refused_and_nothing_moves(env: Env, capfd: pytest.CaptureFixture[str]) -> None:
    v2 = env.register(make_shifted_model(env.tmp / "v2.onnx", seed=1, graph_name="v2"))
    capfd.readouterr()
    dr = run_dag(DAG_FILE, DAG_ID, env.conf(v2, actor="ceo"))
    out, err = capfd.readouterr()
    states = task_states(dr)
    assert dr.state == "failed", states
    assert states["prepare"] == "failed", states
    assert "conf.actor is not accepted" in out + err
    assert env.tags(v2) == {}, "the candidate is left untouched"
    assert cc.read_lock(env.name) is None
    _champion_only(env, "1")
    assert not any(r.actor == "ceo" for r in audit.read_records())


def test_a_second_canary_of_the_same_model_is_refused_while_one_is_in_progress(env: Env) -> None:
    v2 = env.register(make_shifted_model(env.tmp / "v2.onnx", seed=1, graph_name="v2"))
    v3 = env.register(make_shifted_model(env.tmp / "v3.onnx", seed=1, graph_name="v3"))
    router = RouterClient(env.router.url, ADMIN_TOKEN)
    first = cc.start(env.name, v2, cc.Ctx(router, "alice", "run-a"), str(env.policy))
    assert first["noop"] is None and cc.read_lock(env.name)["version"] == v2
    with pytest.raises(cc.CanaryLocked) as e:
        cc.start(env.name, v3, cc.Ctx(router, "bob", "run-b"), str(env.policy))
    assert f"a canary of {env.name} version {v2} is in progress (run run-a" in e.value.message
    assert "--abort" in e.value.message
    assert cc.version_tags(env.name, v3) == {}, "the refused candidate is left untouched"
    out = rb.abort(env.name, router, "oncall")
    assert out["event"] == "rollback" and "aborted by oncall" in out["reason"]
    assert cc.read_lock(env.name) is None and env.tags(v2)[cc.TAG_VERDICT] == "rolled_back"
    assert cc.start(env.name, v3, cc.Ctx(router, "bob", "run-b"), str(env.policy))["noop"] is None


KILLED_RUN = """
import os, signal, sys
sys.path[:0] = ['.', 'tests', 'serving_images/router']
from include.canary import hooks
hooks.on_point(lambda point: os.kill(os.getpid(), signal.SIGKILL) if point == 'after_routes:2' else None)
from support_airflow import run_dag
run_dag('canary_promotion.py', 'canary_promotion', {conf!r})
"""


def test_run_killed_between_setting_routes_and_tagging_is_rerun_and_converges(env: Env) -> None:
    v2 = env.register(make_shifted_model(env.tmp / "v2.onnx", seed=1, graph_name="v2"))
    ensure_airflow_db()
    with env.traffic():
        proc = subprocess.run(
            [sys.executable, "-c", KILLED_RUN.format(conf=env.conf(v2))],
            cwd=REPO,
            capture_output=True,
            timeout=180,
        )
        assert proc.returncode == -9, proc.stderr[-3000:]
        # killed after the router took stage 2 (100 %) and before the registry recorded it
        assert {v["name"]: v["weight_bp"] for v in env.routes()["variants"]} == {
            "champion": 0,
            "canary": 10000,
        }
        tags = env.tags(v2)
        assert tags[cc.TAG_STAGE] == "1" and tags[cc.TAG_VERDICT] == "in_progress"
        killed_run = cc.read_lock(env.name)["run_id"]
        dr = run_dag(DAG_FILE, DAG_ID, env.conf(v2))
    states = task_states(dr)
    assert dr.state == "success", states
    assert states["route_1"] == "skipped", "stage 1 had passed: the re-run resumes at stage 2"
    assert reg.get_alias_version(env.name, "champion") == v2
    _champion_only(env, v2)
    assert env.tags(v2)[cc.TAG_VERDICT] == "promoted" and cc.read_lock(env.name) is None
    changes = httpx.get(f"{env.router.url}/admin/changes", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    full = [
        c
        for c in changes.json()["changes"]
        if c["action"] == "routes.put"
        and c["subject"] == f"routes:{env.name}"
        and any(
            v["name"] == "canary" and v["weight_bp"] == 10000 for v in (c["after"] or {}).get("variants", [])
        )
    ]
    assert len(full) == 1, "the re-run found stage 2's routes in place and did not set them again"
    assert any(
        r.action == "canary.lock" and r.before and r.before["run_id"] == killed_run
        for r in audit.read_records()
        if env.name in r.subject
    ), "the re-run took over the lock"


def test_marginal_candidate_waits_for_approval_and_the_answers_given_through_the_api_decide(
    env: Env, api_server: ApiServer
) -> None:
    shifted = env.register(make_shifted_model(env.tmp / "shifted.onnx", seed=1, shift=2.0))
    approver = Approver(api_server, DAG_ID, {"approval_1": "Approve", "approval_2": "Reject"})
    approver.start()
    with env.traffic():
        dr = run_dag(DAG_FILE, DAG_ID, env.conf(shifted))
    approver.finish()
    states = task_states(dr)
    assert not approver.errors and not approver.answers, (approver.errors, approver.answers)
    assert states["approval_1"] == "success" and states["approval_2"] == "success", states
    assert "| score | High (failed)" in approver.bodies["approval_1"], "the evidence is in the approval form"
    tags = env.tags(shifted)
    s1, s2 = (json.loads(tags[f"modelgate.canary.stage_{i}"]) for i in (1, 2))
    assert s1["decision"] == "approved" and s1["score"] == 75.0 and s1["approved_by"]
    assert s2["decision"] == "marginal"
    assert tags[cc.TAG_VERDICT] == "rolled_back" and "stage 2 was marginal" in tags[cc.TAG_REASON]
    assert "rejected it" in tags[cc.TAG_REASON]
    assert dr.state == "failed"
    assert reg.get_alias_version(env.name, "champion") == "1"
    _champion_only(env, "1")
