"""The steps of the ``model_registration`` DAG: validate → stage → register → alias, typed.

Each step does its job once and passes references on as frozen records (:mod:`include.xcom`; the DAG
turns them into XCom dicts with ``to_xcom()`` and back with ``from_xcom()``): the
:class:`~include.registry.request.RegistrationRequest` (checked against the allowed sources), then a
:class:`~include.registry.staging.StagedModel` (a ``runs:/`` URI in the MLflow artifact store, the
sha256, the signature), then :class:`Registered`, then :class:`AliasAssigned`. The worker-local staging
folder lives only inside :func:`stage` and is removed whether it succeeds or fails. A refused
request or artifact leaves one audit record (``model_registration.refused``); a registration leaves
one ``register`` and one ``set_alias`` record.
"""

from __future__ import annotations

import logging
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from include.config import get_settings
from include.errors import ModelgateError
from include.registry import manifest as mf
from include.registry.artifact import fetch_source
from include.registry.audit import append_audit
from include.registry.registry import get_alias_version, register_staged, set_alias
from include.registry.request import RegistrationRequest
from include.registry.sources import check_source
from include.registry.staging import StagedModel, stage_model
from include.xcom import XcomRecord

__all__ = [
    "AliasAssigned",
    "Registered",
    "RegistrationRequest",
    "StagedModel",
    "assign_alias",
    "register",
    "stage",
    "staging_dir",
    "validate",
]

log = logging.getLogger(__name__)

REFUSED = "model_registration.refused"
SPEC_MAX_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class Registered(XcomRecord):
    """The registry version that holds the artifact, and whether this run created it."""

    name: str
    version: str
    uri: str
    semver: str
    sha256: str
    created: bool


@dataclass(frozen=True)
class AliasAssigned(XcomRecord):
    """The alias a new version got (``None``: already registered, aliases unchanged) and the champion."""

    alias: str | None
    reason: str
    champion: str | None


def staging_dir(run_id: str) -> Path:
    """Return the worker-local staging folder of one DAG run (not created)."""
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", run_id)
    return get_settings().home / "staging" / safe


@contextmanager
def _audit_refusal(step: str, subject: str, actor: str, run_id: str, conf: Any) -> Iterator[None]:
    """Record a domain error (bad input, refused source, invalid model) once, then re-raise it."""
    try:
        yield
    except ModelgateError as e:
        shown = {k: conf.get(k) for k in ("model_name", "artifact_uri", "feature_spec_uri")} if isinstance(
            conf, dict) else None
        append_audit(actor, REFUSED, subject, None,
                     {"step": step, "error": e.code, "message": e.message, "request": shown}, run_id)
        raise


def _subject(conf: Any) -> str:
    name = conf.get("model_name") if isinstance(conf, dict) else None
    return f"models:/{name}" if isinstance(name, str) and name else "models:/?"


def validate(conf: Any, actor: str, run_id: str) -> RegistrationRequest:
    """Validate the DAG conf and check both URIs against the allowed sources; return the request.

    Raises:
        InvalidConf, SourceRefused, InvalidModelName: recorded in the audit log first.
    """
    with _audit_refusal("validate_conf", _subject(conf), actor, run_id, conf):
        req = RegistrationRequest.from_conf(conf)
        check_source(req.artifact_uri, "artifact_uri")
        if req.feature_spec_uri:
            check_source(req.feature_spec_uri, "feature_spec_uri")
    return req


def stage(req: RegistrationRequest, actor: str, run_id: str, tracking_uri: str) -> StagedModel:
    """Fetch, validate, hash and log the model to the artifact store; return references only.

    ``tracking_uri`` is the MLflow server (the DAG's connection) the model is staged on.

    Raises:
        SourceRefused, ArtifactNotFound, InvalidModel, InvalidConf: recorded in the audit log first.
    """
    d = staging_dir(run_id)
    try:
        with _audit_refusal("stage", f"models:/{req.model_name}", actor, run_id, req.to_xcom()):
            limit = get_settings().max_model_bytes
            source = check_source(req.artifact_uri, "artifact_uri")
            model = fetch_source(source, d / "model", limit, tracking_uri)
            spec = None
            if req.feature_spec_uri:
                spec = fetch_source(check_source(req.feature_spec_uri, "feature_spec_uri"), d / "spec",
                                    SPEC_MAX_BYTES, tracking_uri)
            staged = stage_model(req.model_name, model, lineage=mf.Lineage.from_dict(req.lineage),
                                 semver=req.semver, feature_spec_path=spec, tracking_uri=tracking_uri,
                                 max_bytes=limit)
    finally:
        shutil.rmtree(d, ignore_errors=True)
    return staged


def register(
    req: RegistrationRequest, staged: StagedModel, actor: str, run_id: str, tracking_uri: str
) -> Registered:
    """Register the staged model on ``tracking_uri`` (or return the version already holding this artifact)."""
    rv = register_staged(staged, actor=actor, lineage=mf.Lineage.from_dict(req.lineage),
                         residency=req.residency, run_id=run_id, tracking_uri=tracking_uri)
    return Registered(rv.name, rv.version, rv.uri, rv.semver, rv.sha256, rv.created)


def assign_alias(registered: Registered, actor: str, run_id: str, tracking_uri: str) -> AliasAssigned:
    """Make a new version ``challenger``, or ``champion`` when the model on ``tracking_uri`` has none yet."""
    name, version = registered.name, registered.version
    champion = get_alias_version(name, mf.ALIAS_CHAMPION, tracking_uri)
    if not registered.created:
        return AliasAssigned(None, "artifact already registered; aliases unchanged", champion)
    if champion is None:
        set_alias(
            name,
            mf.ALIAS_CHAMPION,
            version,
            actor=actor,
            run_id=run_id,
            reason="first version of this model: nothing to compare with",
            tracking_uri=tracking_uri,
        )
        return AliasAssigned(mf.ALIAS_CHAMPION, "first version", version)
    set_alias(name, mf.ALIAS_CHALLENGER, version, actor=actor, run_id=run_id, reason="newly registered",
              tracking_uri=tracking_uri)
    return AliasAssigned(mf.ALIAS_CHALLENGER, "newly registered", champion)
