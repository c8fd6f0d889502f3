"""The GPU pods of the kubernetes backend, built with the provider's own pod-building code."""

from __future__ import annotations

import json
from typing import Any

import pytest
from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from kubernetes.client import ApiClient

from include.batch.errors import BatchError
from include.batch.pods import BatchPodSettings, job_arguments, pod_expand_kwargs, pod_operator_kwargs

SECRET_VALUES = ("pw-5f3a9c1e-never-in-a-pod", "AKIA-NEVER-IN-A-POD")


def _pods(monkeypatch: pytest.MonkeyPatch, **settings: Any) -> list[dict[str, Any]]:
    # Credentials present in the scheduler's environment must not leak into the pod spec.
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", SECRET_VALUES[0])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_VALUES[1])
    static = pod_operator_kwargs(
        BatchPodSettings(**settings), f"https://bot:{SECRET_VALUES[0]}@mlflow.internal:5000"
    )
    per_part = pod_expand_kwargs(
        ["s3://lake/in/dt=2026-11-28/part-0000.parquet", "s3://lake/in/dt=2026-11-28/part-0001.parquet"],
        "models:/churn/7",
        "s3://lake/scores/dt=2026-11-28",
        dag_id="nightly_batch_inference",
        run_id="scheduled__2026-11-28T02:00:00+00:00",
    )
    pods = []
    for i, kw in enumerate(per_part):
        op = KubernetesPodOperator(task_id=f"score_{i}", **static, **kw)
        pod = op.build_pod_request_obj(dry_run=True)
        pods.append(ApiClient().sanitize_for_serialization(pod))
    return pods


def test_pods_request_one_gpu_on_gpu_nodes_with_toleration_image_and_job_arguments(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pods = _pods(
        monkeypatch, image="registry.example/modelgate-batch:1.2.3", node_selector={"pool": "gpu-a100"}
    )
    for i, pod in enumerate(pods):
        spec = pod["spec"]
        (c,) = spec["containers"]
        assert c["image"] == "registry.example/modelgate-batch:1.2.3"
        assert c["command"] == ["python", "-m", "include.batch"]
        assert c["args"] == [
            "--model-uri", "models:/churn/7",
            "--input", f"s3://lake/in/dt=2026-11-28/part-000{i}.parquet",
            "--output", "s3://lake/scores/dt=2026-11-28",
            "--providers", "auto", "--batch-rows", "131072", "--no-progress",
        ]  # fmt: skip
        assert c["resources"]["limits"]["nvidia.com/gpu"] == "1"
        assert c["securityContext"]["allowPrivilegeEscalation"] is False
        assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in spec["tolerations"]
        assert spec["nodeSelector"] == {"pool": "gpu-a100"}
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["serviceAccountName"] == "modelgate-batch"
        assert pod["metadata"]["namespace"] == "modelgate"
        assert pod["metadata"]["name"].startswith(f"modelgate-batch-part-000{i}")
        labels = pod["metadata"]["labels"]
        assert labels["modelgate/dag"] == "nightly_batch_inference"
        assert labels["modelgate/run"] == "scheduled__2026-11-28T02-00-00-00-00"
        assert labels["modelgate/partition"] == f"part-000{i}"
        assert pod["metadata"]["annotations"]["modelgate/run-id"] == "scheduled__2026-11-28T02:00:00+00:00"


def test_credentials_are_secret_references_and_no_credential_value_is_in_the_pod(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pods = _pods(monkeypatch)
    env = {e["name"]: e for e in pods[0]["spec"]["containers"][0]["env"]}
    assert env["MLFLOW_TRACKING_PASSWORD"] == {
        "name": "MLFLOW_TRACKING_PASSWORD",
        "valueFrom": {"secretKeyRef": {"name": "modelgate-mlflow", "key": "password"}},
    }
    assert env["AWS_SECRET_ACCESS_KEY"]["valueFrom"]["secretKeyRef"] == {
        "name": "modelgate-object-store",
        "key": "secret-access-key",
    }
    for name in (
        "MLFLOW_TRACKING_USERNAME",
        "MLFLOW_TRACKING_PASSWORD",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
    ):
        assert "value" not in env[name]
    assert env["MODELGATE_TRACKING_URI"]["value"] == "https://mlflow.internal:5000"  # user:password stripped
    text = json.dumps(pods)
    for secret in SECRET_VALUES:
        assert secret not in text
    assert "bot" not in text


def test_operator_settings_retry_with_backoff_defer_and_delete_the_pod() -> None:
    kw = pod_operator_kwargs(
        BatchPodSettings(retries=2, startup_timeout_s=300, max_parallel=3), "http://mlflow:5000"
    )
    op = KubernetesPodOperator(task_id="t", **kw)
    assert op.deferrable is True
    assert op.on_finish_action.value == "delete_pod"
    assert op.startup_timeout_seconds == 300
    assert op.retries == 2 and op.retry_exponential_backoff
    assert op.max_active_tis_per_dagrun == 3


def test_pod_settings_come_from_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELGATE_BATCH_NODE_SELECTOR", '{"cloud.google.com/gke-accelerator": "nvidia-l4"}')
    monkeypatch.setenv("MODELGATE_BATCH_IMAGE", "img:9")
    s = BatchPodSettings()
    assert s.node_selector == {"cloud.google.com/gke-accelerator": "nvidia-l4"} and s.image == "img:9"


def test_partitions_get_a_pinned_version_never_an_alias() -> None:
    with pytest.raises(BatchError, match="pin a version"):
        job_arguments("models:/churn@champion", "in.parquet", "out")
