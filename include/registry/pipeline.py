"""The steps of the ``model_registration`` DAG as plain functions (each is one task body).

Files move between steps through a staging folder under ``<home>/staging/<run_id>/``, the embedded
stand-in for object storage; XCom carries only references (paths under it, URIs, version numbers).
"""

from __future__ import annotations

import logging
import re
import shutil
from pathlib import Path
from typing import Any

from include.config import get_settings
from include.registry import manifest as mf
from include.registry.artifact import fetch_artifact, sha256_file
from include.registry.audit import append_audit
from include.registry.errors import InvalidConf
from include.registry.registry import RegisteredVersion, get_alias_version, register_model, set_alias
from include.registry.request import RegistrationRequest
from include.registry.signature import validate_onnx

log = logging.getLogger(__name__)


def staging_dir(run_id: str) -> Path:
    """Return the staging folder of one DAG run (created on demand)."""
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", run_id)
    d = get_settings().home / "staging" / safe
    d.mkdir(parents=True, exist_ok=True)
    return d


def fetch(request: dict[str, Any], run_id: str) -> dict[str, str | None]:
    """Copy the model (and feature spec, when given) into the run's staging folder."""
    req = RegistrationRequest(**request)
    limit = get_settings().max_model_bytes
    d = staging_dir(run_id)
    model = fetch_artifact(req.artifact_uri, d / "model", limit)
    spec = None
    if req.feature_spec_uri:
        spec = str(fetch_artifact(req.feature_spec_uri, d / "spec", 64 * 1024 * 1024))
    return {"model_path": str(model), "feature_spec_path": spec}


def validate(model_path: str) -> str:
    """Validate the staged model; return its signature as canonical JSON."""
    return validate_onnx(Path(model_path), get_settings().max_model_bytes).to_json()


def hash_artifact(model_path: str) -> str:
    """Return the sha256 of the staged model."""
    return sha256_file(Path(model_path))


def register(
    request: dict[str, Any], staged: dict[str, str | None], sha256: str, actor: str, run_id: str
) -> dict[str, Any]:
    """Register the staged model; refuse when the file changed since it was hashed."""
    req = RegistrationRequest(**request)
    model_path = Path(str(staged["model_path"]))
    if sha256_file(model_path) != sha256:
        raise InvalidConf(f"staged artifact {model_path.name} changed after hashing; refusing to register")
    rv: RegisteredVersion = register_model(
        req.model_name,
        model_path,
        actor=actor,
        lineage=mf.Lineage.from_dict(req.lineage),
        semver=req.semver,
        residency=req.residency,
        feature_spec_path=Path(spec) if (spec := staged.get("feature_spec_path")) else None,
        run_id=run_id,
    )
    return {
        "name": rv.name,
        "version": rv.version,
        "uri": rv.uri,
        "semver": rv.semver,
        "sha256": rv.sha256,
        "created": rv.created,
    }


def assign_alias(registered: dict[str, Any], actor: str, run_id: str) -> dict[str, Any]:
    """Make a new version ``challenger``, or ``champion`` when the model has no champion yet."""
    name, version = registered["name"], registered["version"]
    champion = get_alias_version(name, mf.ALIAS_CHAMPION)
    if not registered["created"]:
        return {
            "alias": None,
            "reason": "artifact already registered; aliases unchanged",
            "champion": champion,
        }
    if champion is None:
        set_alias(
            name,
            mf.ALIAS_CHAMPION,
            version,
            actor=actor,
            run_id=run_id,
            reason="first version of this model: nothing to compare with",
        )
        return {"alias": mf.ALIAS_CHAMPION, "reason": "first version", "champion": version}
    set_alias(name, mf.ALIAS_CHALLENGER, version, actor=actor, run_id=run_id, reason="newly registered")
    return {"alias": mf.ALIAS_CHALLENGER, "reason": "newly registered", "champion": champion}


def record(registered: dict[str, Any], aliased: dict[str, Any], actor: str, run_id: str) -> int:
    """Append the run's outcome to the audit log; return the record id."""
    rec = append_audit(
        actor,
        "model_registration",
        registered["uri"],
        None,
        {"registered": registered, "alias": aliased},
        run_id,
    )
    return rec.id


def cleanup(run_id: str) -> None:
    """Remove the run's staging folder."""
    shutil.rmtree(staging_dir(run_id), ignore_errors=True)
