"""The Kubernetes manifests parse into the client's models and say what the issue asks."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from kubernetes.client import ApiClient
from support import REPO

DEPLOY = REPO / "deploy" / "router"
KINDS = {
    "Deployment": "V1Deployment",
    "Service": "V1Service",
    "ServiceAccount": "V1ServiceAccount",
    "ConfigMap": "V1ConfigMap",
    "HorizontalPodAutoscaler": "V2HorizontalPodAutoscaler",
    "PodDisruptionBudget": "V1PodDisruptionBudget",
    "NetworkPolicy": "V1NetworkPolicy",
}


def load_all() -> dict[str, object]:
    api = ApiClient()
    objs: dict[str, object] = {}
    headless: list[object] = []
    for f in sorted(DEPLOY.glob("*.yaml")):
        if f.name == "kustomization.yaml":
            continue
        for doc in yaml.safe_load_all(f.read_text()):
            kind = doc["kind"]
            assert kind in KINDS, f"{f.name}: unexpected kind {kind}"
            obj = api._ApiClient__deserialize(doc, KINDS[kind])  # the client's own model deserialiser
            assert api.sanitize_for_serialization(obj) == doc, f"{f.name}: fields the model does not know"
            if kind == "Service" and doc["spec"].get("clusterIP") == "None":
                headless.append(obj)
                continue
            objs[kind] = obj
    objs["headless"] = headless
    return objs


@pytest.fixture(scope="module")
def objs():
    return load_all()


def test_every_manifest_deserialises_without_unknown_fields(objs):
    assert set(objs) == set(KINDS) | {"headless"}
    kust = yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())
    assert sorted(kust["resources"]) == sorted(
        p.name for p in DEPLOY.glob("*.yaml") if p.name != "kustomization.yaml"
    )


def test_deployment_has_replicas_probes_resources_and_hardening(objs):
    d = objs["Deployment"]
    assert d.spec.replicas == 3
    pod = d.spec.template.spec
    c = pod.containers[0]
    assert c.readiness_probe.http_get.path == "/v2/health/ready"
    assert c.liveness_probe.http_get.path == "/v2/health/live"
    assert c.resources.requests["cpu"] and c.resources.requests["memory"]
    assert c.resources.limits["cpu"] and c.resources.limits["memory"]
    assert pod.security_context.run_as_non_root is True and pod.security_context.run_as_user != 0
    assert c.security_context.read_only_root_filesystem is True
    assert c.security_context.allow_privilege_escalation is False
    assert c.security_context.capabilities.drop == ["ALL"]
    zones = [t for t in pod.topology_spread_constraints if t.topology_key == "topology.kubernetes.io/zone"]
    assert zones and zones[0].label_selector.match_labels == d.spec.selector.match_labels
    # the whole shutdown fits in the pod's grace period: preStop, the router's own grace period in which
    # it still answers, the drain of requests in flight, and the event flush (10 s margin)
    env = {e.name: e.value for e in c.env}
    drain = float(env["ROUTER_DRAIN_TIMEOUT_SECONDS"])
    grace = float(env["ROUTER_SHUTDOWN_GRACE_SECONDS"])
    pre_stop = c.lifecycle.pre_stop.sleep.seconds
    assert pre_stop >= 1 and grace >= 1  # endpoints take seconds to stop sending to a terminating pod
    assert pre_stop + grace + drain + 10 <= pod.termination_grace_period_seconds
    assert {e.name for e in c.env} >= {"ROUTER_ADMIN_TOKEN", "MLFLOW_TRACKING_URI", "ROUTER_EVENTS_ROOT"}
    # writable paths are volumes, since the root filesystem is read-only
    mounts = {m.mount_path for m in c.volume_mounts}
    state = next(e.value for e in c.env if e.name == "ROUTER_STATE_DIR")
    assert state in mounts and "/tmp" in mounts


def test_service_hpa_pdb_and_network_policy_select_the_router_pods(objs):
    labels = objs["Deployment"].spec.template.metadata.labels
    sel = objs["Deployment"].spec.selector.match_labels
    assert all(labels[k] == v for k, v in sel.items())
    assert all(labels[k] == v for k, v in objs["Service"].spec.selector.items())
    assert objs["Service"].spec.ports[0].target_port == "http"
    hpa = objs["HorizontalPodAutoscaler"]
    assert hpa.spec.scale_target_ref.name == objs["Deployment"].metadata.name
    assert hpa.spec.min_replicas >= 3 and hpa.spec.max_replicas > hpa.spec.min_replicas
    assert objs["PodDisruptionBudget"].spec.selector.match_labels == sel
    assert objs["PodDisruptionBudget"].spec.min_available < objs["Deployment"].spec.replicas
    np_ = objs["NetworkPolicy"]
    assert np_.spec.pod_selector.match_labels == sel
    assert set(np_.spec.policy_types) == {"Ingress", "Egress"}
    assert np_.spec.ingress[0].ports[0].port == 8500


def test_routes_come_from_the_store_and_a_headless_service_lists_every_replica(objs):
    c = objs["Deployment"].spec.template.spec.containers[0]
    env = {e.name: e for e in c.env}
    # the store URL (with its password) comes from a Secret, never from the manifest
    assert env["ROUTER_STORE_URL"].value is None
    assert env["ROUTER_STORE_URL"].value_from.secret_key_ref.key == "store-url"
    key_dir = str(Path(env["ROUTER_AUDIT_KEY_FILE"].value).parent)
    mounts = {m.mount_path: m for m in c.volume_mounts}
    assert mounts[key_dir].read_only is True
    vols = {v.name: v for v in objs["Deployment"].spec.template.spec.volumes}
    assert vols[mounts[key_dir].name].secret.secret_name == env["ROUTER_STORE_URL"].value_from.secret_key_ref.name
    # nothing routes-related lives on an emptyDir: the only routes file is the read-only seed ConfigMap
    assert "--routes" in c.args and vols[mounts["/etc/modelgate"].name].config_map is not None
    (headless,) = objs["headless"]
    assert headless.spec.cluster_ip == "None"
    assert headless.spec.selector == objs["Deployment"].spec.selector.match_labels
    assert headless.spec.ports[0].port == 8500
    egress_ports = {p.port for rule in objs["NetworkPolicy"].spec.egress for p in rule.ports}
    assert 5432 in egress_ports


def test_config_map_holds_a_valid_routes_document(objs):
    from router.routes import parse_document

    doc = parse_document(yaml.safe_load(objs["ConfigMap"].data["routes.yaml"]))
    assert "churn" in doc.models


def test_dockerfile_is_slim_non_root_with_a_healthcheck():
    text = (REPO / "serving_images" / "router" / "Dockerfile").read_text()
    assert "FROM python:3.11-slim" in text
    assert "USER 10001" in text and "HEALTHCHECK" in text and "/v2/health/live" in text
    # the router imports the shared contracts and control packages and nothing else of the repository
    copies = [line.split()[1] for line in text.splitlines() if line.startswith("COPY ")]
    assert copies == [
        "serving_images/router/requirements.txt",
        "modelgate_contracts/",
        "modelgate_control/",
        "serving_images/router/router/",
        # not Python: the entrypoint wrapper that reads the `router` MLflow identity from a secret file
        "serving_images/mlflow/mlflow-secrets.sh",
    ]
    assert Path(REPO / "serving_images" / "router" / "requirements.txt").read_text().count("airflow") == 0


def test_the_event_writer_yields_the_cpu_and_the_pod_has_a_second_one_for_it(objs):
    from router.settings import RouterSettings

    c = objs["Deployment"].spec.template.spec.containers[0]
    env = {e.name: e.value for e in c.env if e.value is not None}
    # the router's own settings class reads the manifest's values (a misspelt name or value fails here)
    settings = RouterSettings(**{k.removeprefix("ROUTER_").lower(): v for k, v in env.items() if k in {
        "ROUTER_EVENTS_WRITER_IDLE", "ROUTER_STORE_POLL_SECONDS", "ROUTER_DRAIN_TIMEOUT_SECONDS"}})  # fmt: skip
    assert settings.events_writer_idle is True
    # under SCHED_IDLE the writer runs where the serving process leaves a CPU free: the limit allows two
    limit = c.resources.limits["cpu"]
    cpus = float(limit[:-1]) / 1000 if limit.endswith("m") else float(limit)
    assert cpus >= 2, limit
