"""A champion alias moved by hand does not change what the router serves (issue 13, real MLflow + router)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import mlflow
import onnx
from mlflow import MlflowClient
from support import mlflow_env

from include.canary.routeplan import desired_routes

BODY = {"inputs": [[0.5, -1.0, 2.0, 0.25]]}
NAME = "trust-test-churn"


def _register(path: Path) -> str:
    with mlflow.start_run(experiment_id="0"):
        info = mlflow.onnx.log_model(onnx.load(str(path)), name="model", registered_model_name=NAME)
    v = str(info.registered_model_version)
    MlflowClient().set_model_version_tag(NAME, v, "modelgate.sha256", hashlib.sha256(path.read_bytes()).hexdigest())
    return v


def test_hand_moved_champion_alias_with_a_valid_sha_changes_nothing_the_router_serves(
    tracking_uri, router_factory, models
) -> None:
    mlflow.set_tracking_uri(tracking_uri)
    v1, v2 = _register(models["a"]), _register(models["b"])  # both with a valid sha256 tag
    MlflowClient().set_registered_model_alias(NAME, "champion", v1)
    # what the gates write: the champion by pinned version (include/canary/routeplan.py), no alias
    routes = desired_routes(None, NAME, v1, None, 0, None)
    assert all("@" not in v["uri"] for v in routes["variants"])
    r = router_factory({"models": {"churn": routes}}, extra_env=mlflow_env("router"))
    with r.client() as c, r.admin() as a:
        assert c.post("/invocations", json=BODY).headers["x-model-version"] == v1
        # somebody with registry write access moves the alias by hand to a well-formed version
        MlflowClient().set_registered_model_alias(NAME, "champion", v2)
        assert a.post("/admin/reload").status_code == 200
        served = {
            c.post("/invocations", json=BODY, headers={"X-Unit-Id": f"u{i}"}).headers["x-model-version"]
            for i in range(20)
        }
        assert served == {v1}
