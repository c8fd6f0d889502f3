"""Resolve a model URI to a verified local ONNX file.

Accepted forms: ``models:/<name>@<alias>``, ``models:/<name>/<version>``, a local ``.onnx`` file,
or a local MLflow model directory. Registry artifacts are cached on disk under
``<home>/model-cache/<name>/<version>-<sha256[:12]>`` and their ``model.onnx`` is checked against
the version's ``modelgate.sha256`` tag before anything loads it.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from include.config import get_settings
from include.registry import manifest as mf
from include.registry.artifact import sha256_file
from include.registry.errors import AuditError, IntegrityError, ModelNotFound, ResidencyRefused
from include.registry.version_files import download_version_onnx
from modelgate_contracts.residency import residency_allows
from modelgate_contracts.uris import MalformedModelUri, parse_model_uri

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ResolvedModel:
    """A model file on local disk whose sha256 was verified."""

    uri: str
    path: Path
    sha256: str
    name: str | None = None
    version: str | None = None


def _onnx_in_dir(d: Path) -> Path:
    files = sorted(d.rglob("*.onnx"))
    if len(files) != 1:
        raise ModelNotFound(f"{d} holds {len(files)} .onnx files; expected exactly one")
    return files[0]


def resolve_model_uri(
    uri: str, cache_dir: Path | None = None, tracking_uri: str | None = None
) -> ResolvedModel:
    """Return a verified local copy of the model at ``uri``.

    Args:
        uri: ``models:/name@alias``, ``models:/name/N``, a ``.onnx`` path or an MLflow model dir.
        cache_dir: where registry artifacts are cached (default ``<home>/model-cache``).
        tracking_uri: MLflow server (default from settings).

    Returns:
        The resolved model with its path, sha256 and (for registry URIs) name and version.

    Raises:
        ModelNotFound: the URI names nothing that exists.
        IntegrityError: the artifact does not match the version's sha256 tag.
    """
    try:
        ref = parse_model_uri(uri)
    except MalformedModelUri as e:
        raise ModelNotFound(str(e)) from e
    if ref is None:
        p = Path(uri).expanduser()
        if p.is_file():
            return ResolvedModel(uri, p, sha256_file(p))
        if p.is_dir():
            f = _onnx_in_dir(p)
            return ResolvedModel(uri, f, sha256_file(f))
        raise ModelNotFound(f"model {uri!r} is neither a registry URI nor an existing file or directory")
    return _resolve_registry(uri, ref.name, ref.alias, ref.version, cache_dir, tracking_uri)


def check_residency(uri: str, version: str, tag: str | None, region: str | None = None) -> None:
    """Refuse (and audit) a version whose ``modelgate.residency`` does not allow this worker's region.

    Args:
        uri: the model URI being resolved.
        version: the registry version.
        tag: its ``modelgate.residency`` value (None: no constraint).
        region: the region (default ``MODELGATE_REGION``; None there: not enforced).

    Raises:
        ResidencyRefused: the tag does not allow the region.
    """
    from include.registry.audit import append_audit

    region = region if region is not None else get_settings().region
    if residency_allows(tag, region):
        return
    msg = (
        f"{uri} (version {version}) has {mf.TAG_RESIDENCY}={tag}, which does not allow region {region} "
        "(MODELGATE_REGION); refusing to load it before reading any data"
    )
    log.error("%s", msg)
    try:
        after = {"version": version, "residency": tag, "region": region}
        append_audit(f"region:{region}", "residency.refused", uri, None, after)
    except AuditError as e:  # the refusal stands even when the audit log is out of reach
        log.error("cannot audit the residency refusal of %s: %s", uri, e)
    raise ResidencyRefused(msg)


def _resolve_registry(
    uri: str,
    name: str,
    alias: str | None,
    version: str | None,
    cache_dir: Path | None,
    tracking_uri: str | None,
) -> ResolvedModel:
    from mlflow.exceptions import MlflowException

    from include.registry.registry import get_client

    client = get_client(tracking_uri)
    try:
        mv = (
            client.get_model_version_by_alias(name, alias)
            if alias
            else client.get_model_version(name, str(version))
        )
    except MlflowException as e:
        raise ModelNotFound(f"{uri} not found in the registry: {e.message}") from e
    check_residency(uri, str(mv.version), mv.tags.get(mf.TAG_RESIDENCY))  # before any download or data read
    expected = mv.tags.get(mf.TAG_SHA256)
    if not expected:
        raise IntegrityError(f"{uri} (version {mv.version}) has no {mf.TAG_SHA256} tag; refusing to load it")
    root = cache_dir or get_settings().home / "model-cache"
    target = root / name / f"{mv.version}-{expected[:12]}"
    if target.is_dir():
        f = _onnx_in_dir(target)
        if sha256_file(f) == expected:
            return ResolvedModel(uri, f, expected, name, str(mv.version))
        log.warning("cached copy of %s/%s is corrupt; downloading again", name, mv.version)
        shutil.rmtree(target)
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=root, prefix=".dl-"))
    try:
        # through the registry's own route: READ on the registered model is enough (version_files)
        f = download_version_onnx(tracking_uri or get_settings().tracking_uri, name, str(mv.version), tmp)
        actual = sha256_file(f)
        if actual != expected:
            raise IntegrityError(
                f"{uri} (version {mv.version}): artifact sha256 {actual[:12]}… does not match the manifest's "
                f"{expected[:12]}…; refusing to load it"
            )
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp.rename(target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return ResolvedModel(uri, _onnx_in_dir(target), expected, name, str(mv.version))
