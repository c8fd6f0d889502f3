"""What the nightly DAG launches: the job's arguments, and the GPU pod for the ``kubernetes`` backend.

Both backends run the same entrypoint (``python -m include.batch``) with the same arguments
(:func:`job_arguments`): the ``local`` backend as a subprocess of the Airflow worker, the
``kubernetes`` backend as one ``KubernetesPodOperator`` pod per partition, built from
:func:`pod_operator_kwargs` (the same for every partition) and :func:`pod_expand_kwargs` (one dict
per partition). Credentials reach the pod only as references to Kubernetes Secrets.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from kubernetes.client import models as k8s
from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from include.batch.errors import BatchError

log = logging.getLogger(__name__)

ENTRYPOINT = ["python", "-m", "include.batch"]
"""The batch image's command; the local backend runs the same module with the worker's Python."""

GPU_RESOURCE = "nvidia.com/gpu"
_LABEL_BAD = re.compile(r"[^A-Za-z0-9_.-]+")


class SecretRef(BaseModel):
    """One environment variable of the pod, read from a key of a Kubernetes Secret."""

    env: str
    """Name of the environment variable inside the container."""
    source: str
    """Name of the Kubernetes Secret."""
    key: str
    """Key within the Secret."""


def _default_secrets() -> list[SecretRef]:
    return [
        SecretRef(env="MLFLOW_TRACKING_USERNAME", source="modelgate-mlflow", key="username"),
        SecretRef(env="MLFLOW_TRACKING_PASSWORD", source="modelgate-mlflow", key="password"),
        SecretRef(env="AWS_ACCESS_KEY_ID", source="modelgate-object-store", key="access-key-id"),
        SecretRef(env="AWS_SECRET_ACCESS_KEY", source="modelgate-object-store", key="secret-access-key"),
    ]


class BatchPodSettings(BaseSettings):
    """Settings of the batch pods, read from ``MODELGATE_BATCH_*`` environment variables (JSON for dicts and lists)."""

    model_config = SettingsConfigDict(env_prefix="MODELGATE_BATCH_", extra="ignore")

    image: str = "modelgate-batch:0.1.0"
    """Image built from ``serving_images/batch/``."""
    namespace: str = "modelgate"
    """Namespace the pods run in."""
    kubernetes_conn_id: str = "kubernetes_default"
    """Airflow connection to the cluster."""
    service_account: str | None = "modelgate-batch"
    """Service account of the pods (none: the namespace default)."""
    node_selector: dict[str, str] = Field(default_factory=lambda: {"nvidia.com/gpu.present": "true"})
    """Node selector that lands the pods on GPU nodes."""
    gpus: int = 1
    """GPUs per pod (the ``nvidia.com/gpu`` limit)."""
    cpu: str = "4"
    """CPU request and limit per pod."""
    memory: str = "8Gi"
    """Memory request and limit per pod."""
    secrets: list[SecretRef] = Field(default_factory=_default_secrets)
    """Credentials, as Secret references (values never appear in the pod spec)."""
    startup_timeout_s: int = 600
    """How long a pod may stay pending (image pull, GPU node scale-up) before the try fails."""
    retries: int = 3
    """Retries of a failed partition, with exponential backoff."""
    retry_delay_s: int = 60
    """First retry delay; it doubles on each retry."""
    max_parallel: int = 8
    """Partitions scored at the same time in one DAG run."""
    batch_rows: int = 131_072
    """``--batch-rows`` of the job."""


def _label(value: str) -> str:
    """Return ``value`` as a valid Kubernetes label value (63 chars of ``[A-Za-z0-9_.-]``, alnum ends)."""
    return _LABEL_BAD.sub("-", value)[:63].strip("-_.") or "none"


def public_tracking_uri(uri: str) -> str:
    """Return a tracking URI with any ``user:password@`` removed (credentials come from Secrets).

    Args:
        uri: the MLflow tracking URI.

    Returns:
        The URI without user info.
    """
    parts = urlsplit(uri)
    if parts.username or parts.password:
        log.warning("event=strip_credentials what=tracking_uri reason=credentials_come_from_secrets")
        host = parts.hostname or ""
        netloc = f"{host}:{parts.port}" if parts.port else host
        return urlunsplit(parts._replace(netloc=netloc))
    return uri


def job_arguments(
    model_uri: str,
    input_path: str,
    output_dir: str,
    *,
    providers: str = "auto",
    batch_rows: int = 131_072,
    feature_spec: str | None = None,
    keys: Sequence[str] | None = None,
) -> list[str]:
    """Return the batch job's arguments for one partition (both backends use exactly these).

    Args:
        model_uri: a pinned model URI (``models:/name/N``).
        input_path: the partition file.
        output_dir: the date's output folder.
        providers: ``auto``, ``cpu`` or ``cuda``.
        batch_rows: rows per record batch.
        feature_spec: optional feature spec path.
        keys: optional key columns.

    Returns:
        The argument list, without the entrypoint.

    Raises:
        BatchError: the model URI is an alias (the run must pin a version first).
    """
    if model_uri.startswith("models:/") and "@" in model_uri:
        raise BatchError(f"{model_uri}: pin a version (models:/name/N) before launching partitions")
    args = ["--model-uri", model_uri, "--input", input_path, "--output", output_dir]
    args += ["--providers", providers, "--batch-rows", str(batch_rows), "--no-progress"]
    if feature_spec:
        args += ["--feature-spec", feature_spec]
    if keys:
        args += ["--keys", ",".join(keys)]
    return args


def secret_env(settings: BatchPodSettings) -> list[k8s.V1EnvVar]:
    """Return the pod's credential variables, each a ``secretKeyRef`` (never a value).

    Args:
        settings: the pod settings.

    Returns:
        One ``V1EnvVar`` per configured secret reference.
    """
    return [
        k8s.V1EnvVar(
            name=s.env,
            value_from=k8s.V1EnvVarSource(secret_key_ref=k8s.V1SecretKeySelector(name=s.source, key=s.key)),
        )
        for s in settings.secrets
    ]


def pod_operator_kwargs(settings: BatchPodSettings, tracking_uri: str) -> dict[str, Any]:
    """Return the ``KubernetesPodOperator`` arguments shared by every partition of the DAG.

    Args:
        settings: the pod settings.
        tracking_uri: the MLflow server the pods reach (credentials are stripped).

    Returns:
        Keyword arguments for ``KubernetesPodOperator.partial``.
    """
    limits = {GPU_RESOURCE: str(settings.gpus), "cpu": settings.cpu, "memory": settings.memory}
    return {
        "kubernetes_conn_id": settings.kubernetes_conn_id,
        "namespace": settings.namespace,
        "image": settings.image,
        "image_pull_policy": "IfNotPresent",
        "cmds": list(ENTRYPOINT),
        "service_account_name": settings.service_account,
        "container_resources": k8s.V1ResourceRequirements(
            requests={"cpu": settings.cpu, "memory": settings.memory}, limits=limits
        ),
        "tolerations": [k8s.V1Toleration(key=GPU_RESOURCE, operator="Exists", effect="NoSchedule")],
        "node_selector": dict(settings.node_selector),
        "env_vars": [
            k8s.V1EnvVar(name="MODELGATE_TRACKING_URI", value=public_tracking_uri(tracking_uri)),
            k8s.V1EnvVar(name="MLFLOW_TRACKING_URI", value=public_tracking_uri(tracking_uri)),
            *secret_env(settings),
        ],
        "security_context": {"runAsNonRoot": True, "runAsUser": 10001, "runAsGroup": 10001, "fsGroup": 10001},
        "container_security_context": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
        "deferrable": True,
        "startup_timeout_seconds": settings.startup_timeout_s,
        "get_logs": True,
        "on_finish_action": "delete_pod",
        "log_events_on_failure": True,
        "retries": settings.retries,
        "retry_delay": timedelta(seconds=settings.retry_delay_s),
        "retry_exponential_backoff": True,
        "max_active_tis_per_dagrun": settings.max_parallel,
    }


def pod_expand_kwargs(
    partitions: Sequence[str],
    model_uri: str,
    output_dir: str,
    *,
    dag_id: str,
    run_id: str,
    providers: str = "auto",
    batch_rows: int = 131_072,
) -> list[dict[str, Any]]:
    """Return the per-partition ``KubernetesPodOperator`` arguments (for ``expand_kwargs``).

    Args:
        partitions: partition files of the date.
        model_uri: the pinned model URI.
        output_dir: the date's output folder.
        dag_id: the DAG, for the pod labels.
        run_id: the DAG run, for the pod labels.
        providers: ``--providers`` of the job.
        batch_rows: ``--batch-rows`` of the job.

    Returns:
        One dict per partition with ``name``, ``arguments``, ``labels`` and ``annotations``.
    """
    out = []
    for part in partitions:
        stem = part.rstrip("/").rsplit("/", 1)[-1].removesuffix(".parquet")
        out.append(
            {
                "name": f"modelgate-batch-{_label(stem).lower().replace('_', '-').replace('.', '-')}"[:50],
                "arguments": job_arguments(
                    model_uri, part, output_dir, providers=providers, batch_rows=batch_rows
                ),
                "labels": {
                    "app.kubernetes.io/name": "modelgate-batch",
                    "modelgate/dag": _label(dag_id),
                    "modelgate/run": _label(run_id),
                    "modelgate/partition": _label(stem),
                },
                "annotations": {"modelgate/run-id": run_id, "modelgate/partition": part},
            }
        )
    return out
