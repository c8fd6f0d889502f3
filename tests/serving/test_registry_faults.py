"""The registry (MLflow) down at start and during a reload (issue 19): a real MLflow server, stopped.

The router serves the last good models from its local cache, says so in readiness and ``/metrics``,
keeps serving through a failed reload, and refuses to start with a clear error when it has no cache.
"""

from __future__ import annotations

import hashlib

import mlflow
import onnx
import pytest
from mlflow import MlflowClient
from support import mlflow_identity, start_mlflow_server, stop

from include.registry.credentials import as_identity

BODY = {"inputs": [[0.5, -1.0, 2.0, 0.25]]}


def _metric(text: str, name: str) -> float:
    return float(next(line.split()[-1] for line in text.splitlines() if line.startswith(name + " ")))


def test_registry_down_at_start_and_during_reload_serves_the_cache(
    inproc_factory, models, tmp_path, monkeypatch
):
    proc, uri = start_mlflow_server(tmp_path / "mlflow")
    previous = mlflow.get_tracking_uri()
    try:
        mlflow.set_tracking_uri(uri)
        # the default experiment of this fresh server: an earlier test of the session may have left
        # another experiment active in mlflow's process-wide state, which this server does not have
        with as_identity(mlflow_identity("airflow")):  # the writer registers; the router only reads
            with mlflow.start_run(experiment_id="0"):
                info = mlflow.onnx.log_model(
                    onnx.load(str(models["a"])), name="model", registered_model_name="fault"
                )
            v = str(info.registered_model_version)
            client = MlflowClient(uri)
            client.set_model_version_tag(
                "fault", v, "modelgate.sha256", hashlib.sha256(models["a"].read_bytes()).hexdigest()
            )
            client.set_registered_model_alias("fault", "champion", v)
        routes = {
            "models": {
                "churn": {
                    "variants": [{"name": "champion", "uri": "models:/fault@champion", "weight_bp": 10000}]
                }
            }
        }
        cache = tmp_path / "cache"
        with as_identity(mlflow_identity("router")):
            first = inproc_factory(routes, name="first", tracking_uri=uri, cache_dir=cache)
            with first.client() as c:
                assert c.post("/invocations", json=BODY).headers["x-model-version"] == v
                assert c.get("/v2/health/ready").json() == {"ready": True, "generation": 1, "stale": False}
        # fail fast once the server is gone (set only now: with basic-auth on, a user's first
        # request hashes its password, which can take seconds on a loaded machine)
        monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
        monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    finally:
        mlflow.set_tracking_uri(previous)
        stop(proc)  # the registry is down from here on

    # during a reload: the router keeps serving what it has; readiness and /metrics name the outage
    with first.admin() as a, first.client() as c:
        assert a.post("/admin/reload").status_code == 200
        assert c.post("/invocations", json=BODY).status_code == 200
        ready = c.get("/v2/health/ready").json()
        assert ready["ready"] is True and "registry unreachable" in ready["degraded"]
        m = c.get("/metrics").text
        assert _metric(m, "router_registry_unreachable") == 1
        assert _metric(m, "router_registry_cache_fallbacks_total") >= 1

    # at start: a new router with the same cache serves the last good version
    second = inproc_factory(routes, name="second", tracking_uri=uri, cache_dir=cache)
    with second.client() as c:
        r = c.post("/invocations", json=BODY)
        assert r.status_code == 200 and r.headers["x-model-version"] == v
        assert "registry unreachable" in c.get("/v2/health/ready").json()["degraded"]

    # at start without a cache: a clear error naming the URI and the missing cache
    from router.errors import RouterError

    with pytest.raises(
        RouterError, match=r"models:/fault@champion: the registry is unreachable .* holds no copy"
    ):
        inproc_factory(routes, name="third", tracking_uri=uri, cache_dir=tmp_path / "empty-cache")
