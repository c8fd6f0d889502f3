"""Register ONNX model versions in MLflow with a manifest, and move aliases.

Aliases ``challenger`` and ``champion`` are set only through :func:`set_alias`, which writes the
audit log. A version is created in one MLflow call that carries the whole manifest as tags
(``modelgate.status=ready`` among them), from a model staged in the artifact store
(:mod:`include.registry.staging`); if the audit record cannot be written afterwards the version is
deleted again, so a failed registration never leaves a version that looks valid.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from include.config import get_settings
from include.registry import manifest as mf
from include.registry.audit import append_audit
from include.registry.errors import InvalidConf, ModelNotFound, RegistryError

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

    from include.registry.staging import StagedModel

log = logging.getLogger(__name__)

EXPERIMENT = "modelgate-registry"


@dataclass(frozen=True)
class RegisteredVersion:
    """A registered model version and whether this call created it."""

    name: str
    version: str
    sha256: str
    semver: str
    created: bool
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def uri(self) -> str:
        """The pinned model URI, ``models:/<name>/<version>``."""
        return f"models:/{self.name}/{self.version}"


def get_client(tracking_uri: str | None = None) -> MlflowClient:
    """Return an MLflow client for ``tracking_uri`` as tracking and registry server.

    The client carries the URI itself: nothing process-global is set (``mlflow.set_tracking_uri``
    would also write ``MLFLOW_TRACKING_URI`` into ``os.environ``).

    Args:
        tracking_uri: the MLflow server; None: the settings' (``MODELGATE_TRACKING_URI``), for CLIs.
    """
    from mlflow import MlflowClient

    uri = tracking_uri or get_settings().tracking_uri
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def _versions(client: MlflowClient, name: str) -> list[ModelVersion]:
    from mlflow.exceptions import MlflowException

    try:
        found = client.search_model_versions(f"name='{name}'", max_results=10000)
    except MlflowException as e:
        raise RegistryError(f"cannot list versions of {name!r}: {e.message}") from e
    return sorted(found, key=lambda v: int(v.version))


def _is_ready(v: ModelVersion) -> bool:
    return v.tags.get(mf.TAG_STATUS) == mf.STATUS_READY and mf.TAG_SHA256 in v.tags


def find_by_source_sha(client: MlflowClient, name: str, sha: str) -> ModelVersion | None:
    """Return the ready version of ``name`` registered from an artifact with this sha256, if any."""
    for v in _versions(client, name):
        if _is_ready(v) and v.tags.get(mf.TAG_SOURCE_SHA256) == sha:
            return v
    return None


def latest_ready(client: MlflowClient, name: str) -> ModelVersion | None:
    """Return the newest version of ``name`` with a complete manifest, if any."""
    ready = [v for v in _versions(client, name) if _is_ready(v)]
    return ready[-1] if ready else None


def get_alias_version(name: str, alias: str, tracking_uri: str | None = None) -> str | None:
    """Return the version number ``alias`` points at, or ``None`` when unset."""
    from mlflow.exceptions import MlflowException

    client = get_client(tracking_uri)
    try:
        return str(client.get_model_version_by_alias(name, alias).version)
    except MlflowException:
        return None


def _to_registered(v: ModelVersion, created: bool) -> RegisteredVersion:
    return RegisteredVersion(
        name=v.name,
        version=str(v.version),
        sha256=v.tags[mf.TAG_SHA256],
        semver=v.tags.get(mf.TAG_SEMVER, ""),
        created=created,
        tags={k: val for k, val in v.tags.items() if k.startswith(mf.PREFIX)},
    )


def register_staged(
    staged: StagedModel,
    *,
    actor: str,
    lineage: mf.Lineage | None = None,
    residency: str | None = None,
    run_id: str | None = None,
    tracking_uri: str | None = None,
) -> RegisteredVersion:
    """Turn a staged model into a registry version carrying the whole manifest, audited once.

    Args:
        staged: the output of :func:`include.registry.staging.stage_model`.
        actor: the authenticated user or client that registers, for the manifest and audit log.
        lineage: where the model came from (manifest tags).
        residency: data-residency region.
        run_id: Airflow run id, for the manifest and audit log.
        tracking_uri: MLflow server (defaults to settings).

    Returns:
        The version; ``created`` is False when the same artifact was already registered.

    Raises:
        InvalidConf, RegistryError, AuditError.
    """
    residency = mf.validate_residency(residency)
    lineage = lineage or mf.Lineage()
    client = get_client(tracking_uri)
    name = staged.name
    existing = staged.existing_version or (
        v.version if (v := find_by_source_sha(client, name, staged.sha256)) is not None else None
    )
    if existing is not None:
        return _to_registered(client.get_model_version(name, str(existing)), created=False)
    tags = {
        mf.TAG_SHA256: staged.sha256,
        mf.TAG_SOURCE_SHA256: staged.sha256,
        mf.TAG_SEMVER: staged.semver,
        mf.TAG_SIGNATURE: staged.signature,
        mf.TAG_APPROVAL_STATE: "pending",
        mf.TAG_REGISTERED_BY: actor,
        mf.TAG_STATUS: mf.STATUS_READY,
        **lineage.to_tags(),
    }
    if residency:
        tags[mf.TAG_RESIDENCY] = residency
    if run_id:
        tags[mf.TAG_RUN_ID] = run_id
    if staged.feature_spec_uri:
        tags[mf.TAG_FEATURE_SPEC] = staged.feature_spec_uri
    mv = _create_version(client, name, staged.model_uri, tags)
    _wait_ready(client, name, str(mv.version))
    try:
        append_audit(actor, "register", f"models:/{name}/{mv.version}", None, tags, run_id)
    except Exception:
        log.exception("audit append failed; deleting version %s of %s", mv.version, name)
        client.delete_model_version(name, str(mv.version))
        raise
    return _to_registered(client.get_model_version(name, str(mv.version)), created=True)


def register_model(
    name: str,
    onnx_path: Path,
    *,
    actor: str,
    lineage: mf.Lineage | None = None,
    semver: str | None = None,
    residency: str | None = None,
    feature_spec_path: Path | None = None,
    run_id: str | None = None,
    tracking_uri: str | None = None,
    max_bytes: int | None = None,
) -> RegisteredVersion:
    """Stage and register ``onnx_path`` in one call (library use; the DAG runs the two steps apart).

    Returns:
        The version; ``created`` is False when the same artifact was already registered.

    Raises:
        InvalidModelName, InvalidModel, InvalidConf, RegistryError, AuditError.
    """
    from include.registry.staging import stage_model

    mf.validate_residency(residency)
    staged = stage_model(name, onnx_path, lineage=lineage, semver=semver, feature_spec_path=feature_spec_path,
                         tracking_uri=tracking_uri, max_bytes=max_bytes)
    return register_staged(staged, actor=actor, lineage=lineage, residency=residency, run_id=run_id,
                           tracking_uri=tracking_uri)


def _create_version(client: MlflowClient, name: str, model_uri: str, tags: dict[str, str]) -> ModelVersion:
    """Create a version of ``name`` from a ``runs:/`` model: ``mlflow.register_model``, through ``client``."""
    from mlflow.exceptions import MlflowException
    from mlflow.store.artifact.runs_artifact_repo import RunsArtifactRepository

    try:
        client.create_registered_model(name)
    except MlflowException as e:
        if e.error_code not in ("RESOURCE_ALREADY_EXISTS", "ALREADY_EXISTS"):
            raise
    run_id, _ = RunsArtifactRepository.parse_runs_uri(model_uri)
    source = RunsArtifactRepository.get_underlying_uri(model_uri, tracking_uri=client.tracking_uri)
    return client.create_model_version(name, source, run_id=run_id, tags=tags)


def _wait_ready(client: MlflowClient, name: str, version: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = client.get_model_version(name, version).status
        if status == "READY":
            return
        if status == "FAILED_REGISTRATION":
            raise RegistryError(f"MLflow failed to register version {version} of {name}")
        time.sleep(0.2)
    raise RegistryError(f"version {version} of {name} not READY after {timeout}s")


def set_alias(
    name: str,
    alias: str,
    version: str,
    *,
    actor: str,
    run_id: str | None = None,
    reason: str | None = None,
    tracking_uri: str | None = None,
) -> bool:
    """Point ``alias`` at ``version`` and audit the move; do nothing when it already points there.

    Returns:
        True when the alias moved.

    Raises:
        ModelNotFound: the version does not exist or has no complete manifest.
    """
    from mlflow.exceptions import MlflowException

    client = get_client(tracking_uri)
    try:
        mv = client.get_model_version(name, version)
    except MlflowException as e:
        raise ModelNotFound(f"models:/{name}/{version} does not exist") from e
    if not _is_ready(mv):
        raise ModelNotFound(f"models:/{name}/{version} has no complete modelgate manifest")
    before = get_alias_version(name, alias, tracking_uri)
    if before == str(version):
        return False
    client.set_registered_model_alias(name, alias, str(version))
    append_audit(
        actor,
        "set_alias",
        f"models:/{name}@{alias}",
        {"version": before},
        {"version": str(version), "reason": reason},
        run_id,
    )
    return True


def set_version_tags(
    name: str,
    version: str,
    tags: dict[str, Any],
    *,
    actor: str,
    run_id: str | None = None,
    tracking_uri: str | None = None,
) -> None:
    """Set ``modelgate.*`` tags on a version and audit the change (used by later gates)."""
    client = get_client(tracking_uri)
    mv = client.get_model_version(name, version)
    before = {k: mv.tags.get(k) for k in tags}
    for k, v in tags.items():
        if not k.startswith(mf.PREFIX):
            raise InvalidConf(f"tag {k!r} is outside the {mf.PREFIX} namespace")
        client.set_model_version_tag(name, version, k, v if isinstance(v, str) else json.dumps(v))
    append_audit(actor, "set_tags", f"models:/{name}/{version}", before, tags, run_id)


def describe(name: str, tracking_uri: str | None = None) -> dict[str, Any]:
    """Return versions (number, semver, sha256) and aliases of a model, for summaries."""
    client = get_client(tracking_uri)
    rm = client.get_registered_model(name)
    return {
        "name": name,
        "aliases": {a: str(v) for a, v in (rm.aliases or {}).items()},
        "versions": [
            {"version": v.version, "semver": v.tags.get(mf.TAG_SEMVER), "sha256": v.tags.get(mf.TAG_SHA256)}
            for v in _versions(client, name)
            if _is_ready(v)
        ],
    }
