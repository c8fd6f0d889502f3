"""Register ONNX model versions in MLflow with a manifest, and move aliases.

Aliases ``challenger`` and ``champion`` are set only through :func:`set_alias`, which writes the
audit log. A version is created in one MLflow call that carries the whole manifest as tags
(``modelgate.status=ready`` among them), after the artifact was uploaded and read back; if the
audit record cannot be written afterwards the version is deleted again, so a failed registration
never leaves a version that looks valid.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from include.config import get_settings
from include.registry import manifest as mf
from include.registry.artifact import sha256_file
from include.registry.audit import append_audit
from include.registry.errors import IntegrityError, InvalidConf, ModelNotFound, RegistryError
from include.registry.signature import Signature, validate_onnx

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

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
    """Return an MLflow client for the configured tracking/registry server."""
    import mlflow
    from mlflow import MlflowClient

    uri = tracking_uri or get_settings().tracking_uri
    mlflow.set_tracking_uri(uri)
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


def _choose_semver(previous: ModelVersion | None, signature: Signature, semver: str | None) -> str:
    prev_semver = previous.tags.get(mf.TAG_SEMVER) if previous else None
    prev_sig = previous.tags.get(mf.TAG_SIGNATURE) if previous else None
    if semver is None:
        return mf.next_semver(prev_semver, prev_sig, signature.to_json())
    mf.parse_semver(semver)
    if prev_semver:
        if mf.parse_semver(semver) <= mf.parse_semver(prev_semver):
            raise InvalidConf(f"semver {semver} is not greater than the latest version's {prev_semver}")
        if prev_sig != signature.to_json() and mf.parse_semver(semver)[0] == mf.parse_semver(prev_semver)[0]:
            raise InvalidConf(
                f"the input/output signature changed since {prev_semver}: semver {semver} needs a major bump"
            )
    return semver


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
    """Register ``onnx_path`` as a new version of ``name`` with its manifest, or return the existing one.

    Args:
        name: registered model name.
        onnx_path: local ONNX file.
        actor: who registers (user or ``airflow:<dag_id>``), for the audit log.
        lineage: where the model came from.
        semver: explicit version; default is computed from the previous version's signature.
        residency: data-residency region.
        feature_spec_path: feature spec JSON (include.synthetic) logged as an artifact.
        run_id: Airflow run id, for the audit log.
        tracking_uri: MLflow server (defaults to settings).
        max_bytes: size limit (defaults to settings).

    Returns:
        The version; ``created`` is False when the same artifact was already registered.

    Raises:
        InvalidModelName, InvalidModel, InvalidConf, IntegrityError, RegistryError.
    """
    import mlflow
    import onnx

    mf.validate_model_name(name)
    residency = mf.validate_residency(residency)
    lineage = lineage or mf.Lineage()
    limit = max_bytes or get_settings().max_model_bytes
    signature = validate_onnx(onnx_path, limit)
    if feature_spec_path is not None:
        from include.synthetic import FeatureSpec

        FeatureSpec.from_json(feature_spec_path)  # refuse a broken spec before anything is logged
    source_sha = sha256_file(onnx_path)
    client = get_client(tracking_uri)

    existing = find_by_source_sha(client, name, source_sha)
    if existing is not None:
        log.info("%s already registered as version %s", onnx_path.name, existing.version)
        return _to_registered(existing, created=False)

    chosen = _choose_semver(latest_ready(client, name), signature, semver)
    mlflow.set_experiment(EXPERIMENT)
    with mlflow.start_run(run_name=f"register-{name}-{chosen}") as run:
        mlflow.set_tags({"modelgate.model_name": name, "modelgate.semver": chosen})
        if lineage.params:
            mlflow.log_params({k: str(v)[:500] for k, v in lineage.params.items()})
        numeric = {k: float(v) for k, v in lineage.metrics.items() if isinstance(v, int | float)}
        if numeric:
            mlflow.log_metrics(numeric)
        info = mlflow.onnx.log_model(onnx.load(str(onnx_path)), name="model", save_as_external_data=False)
        spec_uri = None
        if feature_spec_path is not None:
            mlflow.log_artifact(str(feature_spec_path), artifact_path="feature_spec")
            spec_uri = f"runs:/{run.info.run_id}/feature_spec/{feature_spec_path.name}"
        stored_sha = _read_back_sha(info.model_uri)

    tags = {
        mf.TAG_SHA256: stored_sha,
        mf.TAG_SOURCE_SHA256: source_sha,
        mf.TAG_SEMVER: chosen,
        mf.TAG_SIGNATURE: signature.to_json(),
        mf.TAG_APPROVAL_STATE: "pending",
        mf.TAG_REGISTERED_BY: actor,
        mf.TAG_STATUS: mf.STATUS_READY,
        **lineage.to_tags(),
    }
    if residency:
        tags[mf.TAG_RESIDENCY] = residency
    if run_id:
        tags[mf.TAG_RUN_ID] = run_id
    if spec_uri:
        tags[mf.TAG_FEATURE_SPEC] = spec_uri
    mv = mlflow.register_model(info.model_uri, name, tags=tags)
    _wait_ready(client, name, str(mv.version))
    try:
        append_audit(actor, "register", f"models:/{name}/{mv.version}", None, tags, run_id)
    except Exception:
        log.exception("audit append failed; deleting version %s of %s", mv.version, name)
        client.delete_model_version(name, str(mv.version))
        raise
    return _to_registered(client.get_model_version(name, str(mv.version)), created=True)


def _read_back_sha(model_uri: str) -> str:
    """Download the logged model again and return the sha256 of its ``model.onnx``."""
    import mlflow

    with tempfile.TemporaryDirectory() as tmp:
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=tmp))
        files = sorted(local.rglob("*.onnx"))
        if len(files) != 1:
            raise IntegrityError(f"logged model {model_uri} holds {len(files)} .onnx files, expected 1")
        return sha256_file(files[0])


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
