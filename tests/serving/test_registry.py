"""Registry sources: aliases and versions resolve through MLflow; a tampered artifact is refused."""

from __future__ import annotations

import hashlib

import mlflow
import onnx
from mlflow import MlflowClient
from support import mlflow_env

BODY = {"inputs": [[0.5, -1.0, 2.0, 0.25]]}


def register(name: str, path, sha: str | None = None) -> str:
    with mlflow.start_run():
        info = mlflow.onnx.log_model(onnx.load(str(path)), name="model", registered_model_name=name)
    v = str(info.registered_model_version)
    real = hashlib.sha256(path.read_bytes()).hexdigest()
    client = MlflowClient()
    client.set_model_version_tag(name, v, "modelgate.sha256", sha or real)
    client.set_model_version_tag(name, v, "modelgate.semver", f"1.{v}.0")
    return v


def test_registry_versions_are_served_verified_and_a_tampered_one_is_refused(
    tracking_uri, router_factory, models
):
    mlflow.set_tracking_uri(tracking_uri)
    name = "router-test-churn"
    v1 = register(name, models["a"])
    v2 = register(name, models["b"])
    MlflowClient().set_registered_model_alias(name, "champion", v1)
    routes = {
        "models": {
            "churn": {
                "variants": [
                    {"name": "champion", "uri": f"models:/{name}@champion", "weight_bp": 5000},
                    {"name": "canary", "uri": f"models:/{name}/{v2}", "weight_bp": 5000},
                ]
            }
        }
    }
    r = router_factory(routes, extra_env=mlflow_env("router"))  # the router reads as `router`
    with r.client() as c, r.admin() as a:
        seen = {}
        for i in range(40):
            resp = c.post("/invocations", json=BODY, headers={"X-Unit-Id": f"u{i}"})
            assert resp.status_code == 200
            seen[resp.headers["x-variant"]] = resp.headers["x-model-version"]
        assert seen == {"champion": v1, "canary": v2}
        # the artifacts were cached by (name, version, sha256)
        assert len(list((r.state_dir / "cache" / name).iterdir())) == 2

        bad = register(name, models["c"], sha="0" * 64)  # tag does not match the file
        resp = a.put(
            "/admin/models/churn/routes",
            json={
                "variants": [
                    {"name": "champion", "uri": f"models:/{name}@champion", "weight_bp": 5000},
                    {"name": "canary", "uri": f"models:/{name}/{bad}", "weight_bp": 5000},
                ]
            },
        )
        assert resp.status_code == 400 and resp.json()["code"] == "sha256_mismatch", resp.text
        assert "refusing to load" in resp.json()["error"]
        err = a.get("/admin/errors").json()["errors"][-1]
        assert err["code"] == "sha256_mismatch" and f"models:/{name}/{bad}" in err["error"]
        assert "sha256" in r.log() and "refused routes.put" in r.log()
        # still serving the old routes
        assert (
            a.get("/admin/models/churn/routes").json()["routes"]["variants"][1]["uri"]
            == f"models:/{name}/{v2}"
        )
        versions = {
            c.post("/invocations", json=BODY, headers={"X-Unit-Id": f"u{i}"}).headers["x-model-version"]
            for i in range(40)
        }
        assert versions == {v1, v2}

        # a version without the tag is refused as well
        with mlflow.start_run():
            info = mlflow.onnx.log_model(
                onnx.load(str(models["c"])), name="model", registered_model_name=name
            )
        resp = a.put(
            "/admin/models/churn/routes",
            json={
                "variants": [
                    {
                        "name": "champion",
                        "uri": f"models:/{name}/{info.registered_model_version}",
                        "weight_bp": 10000,
                    }
                ]
            },
        )
        assert resp.status_code == 400 and "no modelgate.sha256 tag" in resp.json()["error"]
        resp = a.put(
            "/admin/models/churn/routes",
            json={
                "variants": [{"name": "champion", "uri": f"models:/{name}@nosuchalias", "weight_bp": 10000}]
            },
        )
        assert resp.status_code == 400 and "not found in the registry" in resp.json()["error"]
