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
import threading
import time
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
from support import REPO, free_port, stop, wait_http
from support_airflow import ensure_airflow_db, run_dag, task_states

from include.canary import controller as cc
from include.canary import rollback as rb
from include.canary.faulty import make_erroring_model, make_shifted_model
from include.canary.router_client import RouterClient
from include.registry import audit
from include.registry import registry as reg
from include.synthetic.spec import FeatureSpec
from include.traffic.generator import TrafficConfig, TrafficThread

pytestmark = pytest.mark.integration

DAG_FILE, DAG_ID = "canary_promotion.py", "canary_promotion"
BAKE = 3.0


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

    def traffic(self, rate: float = 120, duration: float = 120) -> TrafficThread:
        cfg = TrafficConfig(self.router.url, self.name, rate=rate, duration_s=duration, n_units=500)
        return TrafficThread(cfg, self.spec).start()

    def routes(self) -> dict[str, Any]:
        r = RouterClient(self.router.url, ADMIN_TOKEN).get_routes(self.name)
        assert r is not None
        return r

    def tags(self, version: str) -> dict[str, str]:
        return cc.version_tags(self.name, version)

    def conf(self, version: str, **kw: Any) -> dict[str, Any]:
        return {"model_name": self.name, "version": version, "policy": str(self.policy), "actor": "tester", **kw}


def _policy(path: Path, **over: Any) -> Path:
    doc = {
        "stages": [20, 100],
        "bake_seconds": BAKE,
        "events_grace_seconds": 1.5,
        "judge": {"metrics": {m: {"min_samples": 30} for m in ("error_rate", "latency_ms", "score")}},
        "guard": {"enabled": True, "window": 50, "min_requests": 20, "max_error_rate": 0.1, "max_latency_ms": 250,
                  "max_slow_rate": 0.5},
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
    routes = {"models": {name: {"variants": [{"name": "champion", "uri": f"models:/{name}/1", "weight_bp": 10000}]}}}
    router = start_router(tmp_path / "router", routes)
    notify = tmp_path / "notify.jsonl"
    monkeypatch.setenv("MODELGATE_ROUTER_URL", router.url)
    monkeypatch.setenv("ROUTER_ADMIN_TOKEN", ADMIN_TOKEN)
    monkeypatch.setenv("MODELGATE_EVENTS_ROOT", str(router.events_root))
    monkeypatch.setenv("MODELGATE_CANARY_NOTIFY_FILE", str(notify))
    monkeypatch.delenv("AIRFLOW_CONN_MODELGATE_ROUTER", raising=False)
    yield Env(name, router, _policy(tmp_path / "policy.yaml"), notify, spec, tmp_path)
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


def test_good_candidate_goes_through_every_stage_becomes_champion_and_rolls_back_in_one_command(env: Env) -> None:
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
    assert [n["event"] for n in _notifications(env)] == ["promote"]

    dr2 = run_dag(DAG_FILE, DAG_ID, env.conf(v2))  # re-run: nothing happens twice
    assert dr2.state == "success", task_states(dr2)
    recs2 = [r for r in audit.read_records() if env.name in r.subject]
    assert [r.action for r in recs2].count("canary.promote") == 1
    assert [r.action for r in recs2].count("set_alias") == [r.action for r in recs].count("set_alias")

    res = subprocess.run(
        [sys.executable, "-m", "include.canary.rollback", "--model", env.name, "--actor", "oncall"],
        cwd=REPO, env=os.environ.copy(), capture_output=True, text=True, timeout=60,
    )
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["champion"] == "1"
    assert reg.get_alias_version(env.name, "champion") == "1"
    assert reg.get_alias_version(env.name, "previous_champion") == v2
    _champion_only(env, "1")
    assert _served_versions(env) == {"1": 60}
    assert env.tags(v2)[cc.TAG_VERDICT] == "rolled_back"
    assert any(r.action == "champion.rollback" and r.actor == "oncall" for r in audit.read_records()[-5:])
