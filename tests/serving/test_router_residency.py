"""Residency at load (issue 17), real processes: a router in me-central-1 refuses a version tagged
eu-west-1 (clear admin error, log, refusal record; the last good version keeps serving), marks its
events root, and will not start on another region's events root; the batch job refuses the same
version before it reads any data, and the refusal is audited."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import mlflow
import pytest
from conftest import start_router
from mlflow import MlflowClient
from support import REPO
from test_registry import BODY, register

REGION, FOREIGN = "me-central-1", "eu-west-1"


def test_router_in_me_central_1_refuses_a_version_resident_in_eu_west_1(tracking_uri, router_factory, models):
    mlflow.set_tracking_uri(tracking_uri)
    name = "residency-churn"
    local = register(name, models["a"])
    MlflowClient().set_model_version_tag(name, local, "modelgate.residency", f"{REGION},{FOREIGN}")
    foreign = register(name, models["b"])
    MlflowClient().set_model_version_tag(name, foreign, "modelgate.residency", FOREIGN)
    routes = {
        "models": {
            "churn": {
                "variants": [{"name": "champion", "uri": f"models:/{name}/{local}", "weight_bp": 10000}]
            }
        }
    }
    r = router_factory(routes, extra_env={"ROUTER_REGION": REGION, "ROUTER_TRACKING_URI": tracking_uri})
    assert (r.events_root / "_region").read_text().strip() == REGION
    with r.client() as c, r.admin() as a:
        resp = a.put(
            "/admin/models/churn/routes",
            json={"variants": [{"name": "champion", "uri": f"models:/{name}/{foreign}", "weight_bp": 10000}]},
        )
        assert resp.status_code == 403, resp.text
        err = resp.json()
        assert err["code"] == "residency_refused"
        assert f"modelgate.residency={FOREIGN}" in err["error"] and REGION in err["error"]
        assert a.get("/admin/errors").json()["errors"][-1]["code"] == "residency_refused"
        for i in range(10):  # the last good version keeps serving
            ok = c.post("/invocations", json=BODY, headers={"X-Unit-Id": f"u{i}"})
            assert ok.status_code == 200 and ok.headers["x-model-version"] == local
    assert "refused routes.put routes:churn" in r.log() and "residency" in r.log()
    refusals = [json.loads(line) for line in (r.state_dir / "refusals.jsonl").read_text().splitlines()]
    assert (
        refusals[-1]["code"] == "residency_refused" and f"models:/{name}/{foreign}" in refusals[-1]["error"]
    )
    # the refusal is in the signed audit log the router shares with the gates (its store's database)
    from include.registry.audit import read_records, verify

    url = f"sqlite:///{(r.state_dir / 'control.db').resolve()}"
    refused = [rec for rec in read_records(url) if rec.action == "residency.refused"]
    assert len(refused) == 1 and refused[0].subject == "routes:churn", refused
    assert refused[0].after["region"] == REGION and f"models:/{name}/{foreign}" in refused[0].after["error"]
    assert verify(url).ok


def test_a_router_does_not_start_on_another_regions_events_root(tmp_path, models):
    events = tmp_path / "events"
    events.mkdir()
    (events / "_region").write_text(FOREIGN + "\n")
    routes = {
        "models": {"churn": {"variants": [{"name": "champion", "uri": str(models["a"]), "weight_bp": 10000}]}}
    }
    with pytest.raises(RuntimeError, match="belongs to region 'eu-west-1'"):
        start_router(
            tmp_path / "r", routes, extra_env={"ROUTER_REGION": REGION, "ROUTER_EVENTS_ROOT": str(events)}
        )


def test_batch_job_in_me_central_1_fails_before_reading_data_and_the_refusal_is_audited(
    tracking_uri, models, tmp_path
):
    from include.registry.audit import read_records

    mlflow.set_tracking_uri(tracking_uri)
    name = "residency-batch"
    v = register(name, models["a"])
    MlflowClient().set_model_version_tag(name, v, "modelgate.residency", FOREIGN)
    data = tmp_path / "in" / "part-0.parquet"
    data.parent.mkdir()
    data.write_bytes(b"not parquet: reading it would fail with another error")
    env = {**os.environ, "MODELGATE_REGION": REGION, "MODELGATE_TRACKING_URI": tracking_uri}
    cmd = [sys.executable, "-m", "include.batch", "--model-uri", f"models:/{name}/{v}", "--input", str(data.parent),
           "--output", str(tmp_path / "out")]  # fmt: skip
    res = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=180)
    assert res.returncode != 0
    assert (
        f"modelgate.residency={FOREIGN}" in res.stderr
        and "refusing to load it before reading any data" in res.stderr
    )
    assert "not parquet" not in res.stderr and "Parquet" not in res.stderr.split("residency")[0]
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())
    rec = next(r for r in reversed(read_records()) if r.action == "residency.refused")
    assert rec.subject == f"models:/{name}/{v}" and rec.after == {
        "version": v,
        "residency": FOREIGN,
        "region": REGION,
    }

    # the same job in eu-west-1 loads the model and only then meets the bad input
    res = subprocess.run(
        cmd, cwd=REPO, env={**env, "MODELGATE_REGION": FOREIGN}, capture_output=True, text=True, timeout=180
    )
    assert res.returncode != 0 and "not a readable Parquet file" in res.stderr
    assert "refusing to load it" not in res.stderr
