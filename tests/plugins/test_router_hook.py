"""RouterHook against a real router process: reads, weight changes, audit records, refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from serving.conftest import ADMIN_TOKEN, start_router, two_variants
from support import make_logreg_onnx, stop

from include.registry.audit import read_records, verify


@pytest.fixture
def hook_env(tmp_path, monkeypatch):
    models = {k: make_logreg_onnx(tmp_path / f"{k}.onnx", seed=i) for i, k in enumerate("abc")}
    r = start_router(tmp_path / "router", two_variants(models["a"], models["b"], canary_bp=500))
    port = int(r.url.rsplit(":", 1)[1])
    monkeypatch.setenv(
        "AIRFLOW_CONN_MODELGATE_ROUTER",
        json.dumps({"conn_type": "http", "host": "127.0.0.1", "port": port, "password": ADMIN_TOKEN}),
    )
    audit_url = f"sqlite:///{tmp_path / 'audit.db'}"
    monkeypatch.setenv("MODELGATE_AUDIT_DB_URL", audit_url)
    yield r, models, audit_url
    stop(r.proc)


def test_hook_changes_weights_through_the_router_and_appends_an_audit_record(hook_env):
    from plugins.router_hook import RouterHook

    _, _, audit_url = hook_env
    hook = RouterHook(actor="airflow:canary_promotion")
    assert hook.get_routes("churn")["variants"][1]["weight_bp"] == 500
    assert hook.get_routes("nope") is None
    result = hook.set_weights("churn", {"champion": 7500, "canary": 2500}, run_id="manual__1")
    assert result["routes"]["variants"][1]["weight_bp"] == 2500
    assert hook.get_routes("churn")["variants"][1]["weight_bp"] == 2500
    # the router's own change log and the foundation's audit log both have it
    assert hook.changes()[-1]["after"]["variants"][1]["weight_bp"] == 2500
    rec = read_records(audit_url)[-1]
    assert (rec.actor, rec.action, rec.subject, rec.run_id) == (
        "airflow:canary_promotion",
        "routes.put",
        "routes:churn",
        "manual__1",
    )
    assert rec.before["variants"][1]["weight_bp"] == 500 and rec.after["variants"][1]["weight_bp"] == 2500
    assert verify(audit_url).ok
    assert {s["variant"] for s in hook.stats()} == {"champion", "canary"}
    assert hook.guard_events() == []


def test_hook_reports_refusals_without_writing_audit_records(hook_env):
    from include.routing.client import RouterClient
    from include.routing.errors import RouterUnauthorized
    from plugins.router_hook import RouterHook, RouterHookError

    r, models, audit_url = hook_env
    hook = RouterHook()
    with pytest.raises(RouterHookError, match="sum to 10000"):
        hook.set_weights("churn", {"canary": 9000})
    with pytest.raises(RouterHookError, match="no variants"):
        hook.set_weights("churn", {"ghost": 100})
    routes = hook.get_routes("churn")
    routes["variants"][1]["uri"] = str(models["c"].parent / "missing.onnx")
    with pytest.raises(RouterHookError, match=r"missing\.onnx"):
        hook.put_routes("churn", routes)
    # nothing was audited: the audit database was never even created
    assert not Path(audit_url.removeprefix("sqlite:///")).exists()
    bad = RouterHook()
    bad._client = RouterClient(r.url, "wrong-token")
    with pytest.raises(RouterUnauthorized) as e:
        bad.stats()
    assert e.value.status == 401


def test_hook_reads_router_replicas_from_the_connection_extra(tmp_path, monkeypatch):
    from plugins.router_hook import RouterHook

    urls = ["http://127.0.0.1:8500", "http://127.0.0.1:8501", "http://127.0.0.1:8502"]
    monkeypatch.setenv(
        "AIRFLOW_CONN_MODELGATE_ROUTER",
        json.dumps({"conn_type": "http", "host": "127.0.0.1", "port": 8500, "password": ADMIN_TOKEN,
                    "extra": {"replicas": urls}}),
    )  # fmt: skip
    assert RouterHook().replicas() == urls


def test_hook_reads_router_replicas_from_the_endpoints_of_a_headless_service_through_kubernetes_hook(
    monkeypatch,
):
    """KubernetesHook (its kube_config from its own connection) asks an API endpoint for the Endpoints.

    No cluster runs here: a loopback HTTP endpoint answers ``GET /api/v1/namespaces/modelgate/endpoints/
    router`` with an Endpoints document as the API server does; the provider's hook and the kubernetes
    client build, send and deserialize the request.
    """
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from support import free_port

    from plugins.router_hook import RouterHook

    asked: list[str] = []
    endpoints = {
        "kind": "Endpoints",
        "apiVersion": "v1",
        "metadata": {"name": "router", "namespace": "modelgate"},
        "subsets": [
            {
                "addresses": [{"ip": "10.1.0.4"}, {"ip": "10.1.2.8"}],
                "notReadyAddresses": [{"ip": "10.1.3.1"}],
                "ports": [{"name": "http", "port": 8500, "protocol": "TCP"}],
            }
        ],
    }

    class Api(BaseHTTPRequestHandler):
        def do_GET(self):
            asked.append(self.path)
            data = json.dumps(endpoints).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Api)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    kubeconfig = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": f"http://127.0.0.1:{server.server_address[1]}"}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "x",
    }
    monkeypatch.setenv(
        "AIRFLOW_CONN_KUBE_TEST",
        json.dumps({"conn_type": "kubernetes", "extra": {"kube_config": json.dumps(kubeconfig)}}),
    )
    monkeypatch.setenv(
        "AIRFLOW_CONN_MODELGATE_ROUTER",
        json.dumps({"conn_type": "http", "host": "router.modelgate.svc", "port": 8500, "password": ADMIN_TOKEN,
                    "extra": {"kubernetes": {"service": "router", "namespace": "modelgate",
                                             "port_name": "http", "conn_id": "kube_test"}}}),
    )  # fmt: skip
    try:
        assert RouterHook().replicas() == ["http://10.1.0.4:8500", "http://10.1.2.8:8500"]
    finally:
        server.shutdown()
    assert asked == ["/api/v1/namespaces/modelgate/endpoints/router"]
    monkeypatch.setenv(
        "AIRFLOW_CONN_MODELGATE_ROUTER",
        json.dumps({"conn_type": "http", "host": "h", "extra": {"kubernetes": {"namespace": "modelgate"}}}),
    )
    from include.routing.errors import InvalidReplicas

    with pytest.raises(InvalidReplicas, match="extra 'kubernetes' needs a 'service' name"):
        RouterHook().replicas()
