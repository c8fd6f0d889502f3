"""Stage a model for registration: validate it once, hash it once, put it in the MLflow artifact store.

The result, :class:`StagedModel`, holds only references (a ``runs:/`` URI in the artifact store,
the sha256, the signature, the chosen semver), so the next step can run on another worker. The
stored ``model.onnx`` holds the very bytes that were hashed, so the manifest's sha256 is the
artifact's own and nothing is downloaded again to hash it.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from include.config import get_settings
from include.registry import manifest as mf
from include.registry.artifact import sha256_file
from include.registry.errors import InvalidConf
from include.registry.registry import EXPERIMENT, find_by_source_sha, get_client, latest_ready
from include.registry.signature import Signature, validate_onnx
from include.xcom import XcomRecord

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StagedModel(XcomRecord):
    """A validated, hashed model in the artifact store, ready to become a registry version.

    ``existing_version`` is set (and ``model_uri`` empty) when the same artifact is already
    registered: nothing was logged and registration returns that version.
    """

    name: str
    model_uri: str
    sha256: str
    signature: str
    semver: str
    feature_spec_uri: str | None = None
    existing_version: str | None = None


def choose_semver(previous: ModelVersion | None, signature: Signature, semver: str | None) -> str:
    """Return the semver of the new version: computed, or the requested one when it is a valid bump.

    Raises:
        InvalidConf: the requested semver is not greater, or the signature changed without a major bump.
    """
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


def stage_model(
    name: str,
    onnx_path: Path,
    *,
    lineage: mf.Lineage | None = None,
    semver: str | None = None,
    feature_spec_path: Path | None = None,
    tracking_uri: str | None = None,
    max_bytes: int | None = None,
) -> StagedModel:
    """Validate and hash ``onnx_path`` once and log it (with the feature spec) to an MLflow run.

    Args:
        name: registered model name.
        onnx_path: local ONNX file (a worker-local copy; only references leave this function).
        lineage: logged as the run's params and metrics.
        semver: requested version; default computed from the previous version's signature.
        feature_spec_path: feature spec JSON (include.synthetic), validated and logged.
        tracking_uri: MLflow server (defaults to settings).
        max_bytes: size limit (defaults to settings).

    Returns:
        The staged model; ``existing_version`` set when this artifact is already registered.

    Raises:
        InvalidModelName, InvalidModel, InvalidConf, RegistryError.
    """
    mf.validate_model_name(name)
    lineage = lineage or mf.Lineage()
    signature = validate_onnx(onnx_path, max_bytes or get_settings().max_model_bytes)
    if feature_spec_path is not None:
        from include.synthetic import FeatureSpec

        FeatureSpec.from_json(feature_spec_path)  # refuse a broken spec before anything is logged
    sha = sha256_file(onnx_path)
    client = get_client(tracking_uri)
    existing = find_by_source_sha(client, name, sha)
    if existing is not None:
        log.info("%s already registered as version %s", onnx_path.name, existing.version)
        return StagedModel(name, "", existing.tags[mf.TAG_SHA256], signature.to_json(),
                           existing.tags.get(mf.TAG_SEMVER, ""), existing_version=str(existing.version))
    chosen = choose_semver(latest_ready(client, name), signature, semver)
    exp = client.get_experiment_by_name(EXPERIMENT)
    exp_id = exp.experiment_id if exp is not None else client.create_experiment(EXPERIMENT)
    tags = {"modelgate.model_name": name, "modelgate.semver": chosen}
    run_id = client.create_run(exp_id, run_name=f"register-{name}-{chosen}", tags=tags).info.run_id
    try:
        spec_uri = _log_staged(client, run_id, onnx_path, lineage, feature_spec_path)
    except BaseException:
        client.set_terminated(run_id, "FAILED")
        raise
    client.set_terminated(run_id, "FINISHED")
    return StagedModel(name, f"runs:/{run_id}/model", sha, signature.to_json(), chosen, spec_uri)


def _log_staged(client: MlflowClient, run_id: str, onnx_path: Path, lineage: mf.Lineage,
                feature_spec_path: Path | None) -> str | None:  # fmt: skip
    """Log lineage, the model (MLmodel + hashed bytes) and the spec to ``run_id``; return the spec's URI."""
    import mlflow.onnx
    import onnx
    from mlflow.entities import Metric, Param

    params = [Param(k, str(v)[:500]) for k, v in lineage.params.items()]
    now_ms = int(time.time() * 1000)
    numeric = {k: float(v) for k, v in lineage.metrics.items() if isinstance(v, int | float)}
    metrics = [Metric(k, v, now_ms, 0) for k, v in numeric.items()]
    if params or metrics:
        client.log_batch(run_id, metrics=metrics, params=params)
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = Path(tmp) / "model"
        mlflow.onnx.save_model(onnx.load(str(onnx_path)), str(model_dir), save_as_external_data=False)
        shutil.copyfile(onnx_path, model_dir / "model.onnx")  # the hashed bytes, not a re-serialisation
        client.log_artifacts(run_id, str(model_dir), artifact_path="model")
    if feature_spec_path is None:
        return None
    client.log_artifact(run_id, str(feature_spec_path), artifact_path="feature_spec")
    return f"runs:/{run_id}/feature_spec/{feature_spec_path.name}"
