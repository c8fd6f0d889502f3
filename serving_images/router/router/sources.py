"""Model sources: registry URIs (``models:/name@alias``, ``models:/name/N``) and local paths.

Registry artifacts are downloaded once into a cache keyed by (name, version, sha256) and their
``model.onnx`` is checked against the version's ``modelgate.sha256`` tag before any session exists.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from modelgate_contracts import tags as tag_names
from modelgate_contracts.hashing import sha256_file
from modelgate_contracts.residency import residency_allows
from modelgate_contracts.uris import MalformedModelUri, is_registry_uri, parse_model_uri
from router.errors import IntegrityError, ModelLoadError, ResidencyRefused

log = logging.getLogger(__name__)

SHA_TAG = tag_names.SHA256
SEMVER_TAG = tag_names.SEMVER
RESIDENCY_TAG = tag_names.RESIDENCY


@dataclass(frozen=True)
class ResolvedModel:
    """A model file on local disk, verified, with what ``X-Model-Version`` should say."""

    path: Path
    sha256: str
    version: str
    source: str
    semver: str | None = None
    residency: str | None = None


def _onnx_in_dir(directory: Path, source: str) -> Path:
    mlmodel = directory / "MLmodel"
    if mlmodel.is_file():
        try:
            meta = yaml.safe_load(mlmodel.read_text(encoding="utf-8")) or {}
            data = meta.get("flavors", {}).get("onnx", {}).get("data")
        except (OSError, yaml.YAMLError, AttributeError) as e:
            raise ModelLoadError(f"{source}: cannot read MLmodel: {e}") from e
        if isinstance(data, str) and (directory / data).is_file():
            return directory / data
    if (directory / "model.onnx").is_file():
        return directory / "model.onnx"
    found = sorted(directory.glob("*.onnx"))
    if len(found) == 1:
        return found[0]
    raise ModelLoadError(f"{source}: no ONNX flavour and no single .onnx file in the model directory")


def resolve_local(uri: str) -> ResolvedModel:
    """Resolve a local ``.onnx`` file or MLflow model directory.

    Args:
        uri: a path (``file://`` prefix allowed).

    Returns:
        The resolved model; its version is the first 12 hex digits of the file's sha256.

    Raises:
        ModelLoadError: the path does not exist or holds no ONNX model.
    """
    p = Path(uri.removeprefix("file://")).expanduser()
    if p.is_dir():
        p = _onnx_in_dir(p, uri)
    elif not p.is_file():
        raise ModelLoadError(
            f"model source {uri!r} is neither a registry URI nor an existing file or directory"
        )
    sha = sha256_file(p)
    return ResolvedModel(p, sha, sha[:12], uri)


class RegistryResolver:
    """Resolves ``models:/`` URIs through the MLflow client and caches the artifacts on disk.

    Args:
        cache_dir: where downloaded model directories live.
        tracking_uri: MLflow tracking URI (defaults to ``MLFLOW_TRACKING_URI``).
        require_sha256: refuse versions without a ``modelgate.sha256`` tag.
    """

    def __init__(
        self,
        cache_dir: Path,
        tracking_uri: str | None,
        require_sha256: bool = True,
        region: str | None = None,
    ) -> None:
        self.cache_dir = cache_dir
        self.region = region
        """The router's region; versions whose residency does not allow it are refused (None: not enforced)."""
        self.tracking_uri = tracking_uri
        self.require_sha256 = require_sha256
        self.fallbacks = 0
        """Resolutions served from the cache because the registry was unreachable."""
        self.unreachable: str | None = None
        """Why the latest registry call failed; None once one succeeds."""

    def _client(self) -> Any:
        from mlflow import MlflowClient

        return MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)

    def _version(self, client: Any, uri: str) -> Any:
        from mlflow.exceptions import MlflowException

        try:
            ref = parse_model_uri(uri)
        except MalformedModelUri as e:
            raise ModelLoadError(f"{uri}: expected models:/<name>@<alias> or models:/<name>/<version>") from e
        if ref is None:
            raise ModelLoadError(f"{uri}: expected models:/<name>@<alias> or models:/<name>/<version>")
        try:
            if ref.alias is not None:
                return client.get_model_version_by_alias(ref.name, ref.alias)
            return client.get_model_version(ref.name, ref.version)
        except MlflowException as e:
            if e.error_code in _NOT_FOUND:
                raise ModelLoadError(f"{uri}: not found in the registry: {e.message}") from e
            raise _Unreachable(str(e.message)[:300]) from e  # the server failed or could not be reached
        except Exception as e:  # network errors of the tracking client
            raise _Unreachable(f"{type(e).__name__}: {e}"[:300]) from e

    def resolve(self, uri: str) -> ResolvedModel:
        """Resolve, download (or reuse the cache) and verify a registry URI.

        Args:
            uri: ``models:/name@alias`` or ``models:/name/N``.

        Returns:
            The verified local model.

        Raises:
            IntegrityError: the file's sha256 differs from the version's tag.
            ModelLoadError: the version does not exist, has no tag, or cannot be downloaded.
        """
        client = self._client()
        try:
            mv = self._version(client, uri)
        except _Unreachable as e:
            return self._from_cache(uri, str(e))
        self.unreachable = None
        name, version = str(mv.name), str(mv.version)
        tags = dict(mv.tags or {})
        self._check_residency(uri, name, version, tags.get(RESIDENCY_TAG))
        expected = tags.get(SHA_TAG)
        if not expected and self.require_sha256:
            raise ModelLoadError(
                f"{uri}: version {version} of {name!r} has no {SHA_TAG} tag; refusing to load"
            )
        key = expected or "untagged"
        target = self.cache_dir / _safe(name) / f"{version}-{key[:16]}"
        if not target.is_dir():
            self._download(name, version, target, uri)
        path = _onnx_in_dir(target, uri)
        actual = sha256_file(path)
        if expected and actual != expected:
            shutil.rmtree(target, ignore_errors=True)
            raise IntegrityError(
                f"{uri}: sha256 of {path.name} is {actual} but version {version} is tagged {SHA_TAG}={expected}; "
                "refusing to load"
            )
        resolved = ResolvedModel(path, actual, version, uri, tags.get(SEMVER_TAG), tags.get(RESIDENCY_TAG))
        self._remember(resolved)
        return resolved

    def _check_residency(self, uri: str, name: str, version: str, tag: str | None) -> None:
        """Refuse a version whose ``modelgate.residency`` does not allow this router's region."""
        if not residency_allows(tag, self.region):
            raise ResidencyRefused(
                f"{uri}: version {version} of {name!r} has {RESIDENCY_TAG}={tag}, which does not allow this "
                f"router's region {self.region}; refusing to load it (the models served now keep serving)"
            )

    def _index(self) -> dict[str, Any]:
        try:
            data = json.loads((self.cache_dir / INDEX).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def _remember(self, res: ResolvedModel) -> None:
        """Record the last good resolution of a URI (what serves when the registry is down)."""
        index = self._index()
        entry = {
            "path": str(res.path),
            "sha256": res.sha256,
            "version": res.version,
            "semver": res.semver,
            "residency": res.residency,
        }
        if index.get(res.source) == entry:
            return
        index[res.source] = entry
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.cache_dir / f".{INDEX}.{os.getpid()}.tmp"
        tmp.write_text(json.dumps(index, sort_keys=True), encoding="utf-8")
        os.replace(tmp, self.cache_dir / INDEX)

    def _from_cache(self, uri: str, why: str) -> ResolvedModel:
        """The last good version of ``uri`` from the local cache, verified again, while the registry is down.

        Raises:
            ModelLoadError: no cached copy, or the cached file no longer matches its sha256.
        """
        self.unreachable = why
        entry = self._index().get(uri)
        if not isinstance(entry, dict):
            raise ModelLoadError(
                f"{uri}: the registry is unreachable ({why}) and the cache {self.cache_dir} holds no copy of "
                "this model (it is filled when the router resolves the URI with the registry up)"
            )
        path = Path(str(entry.get("path")))
        try:
            actual = sha256_file(path)
        except OSError as e:
            raise ModelLoadError(
                f"{uri}: the registry is unreachable ({why}) and the cached copy is gone: {e}"
            ) from e
        if actual != entry.get("sha256"):
            raise IntegrityError(
                f"{uri}: the registry is unreachable and the cached copy {path} fails its sha256"
            )
        self._check_residency(uri, uri, str(entry.get("version")), entry.get("residency"))
        self.fallbacks += 1
        log.warning(
            "%s: registry unreachable (%s); serving the cached version %s", uri, why, entry.get("version")
        )
        semver = entry.get("semver")
        return ResolvedModel(path, actual, str(entry.get("version")), uri, str(semver) if semver else None)

    def _download(self, name: str, version: str, target: Path, uri: str) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".dl-", dir=target.parent))
        try:
            # MLmodel (names the ONNX file) and that file, through the registry's own route
            mlmodel = _fetch_version_file(self.tracking_uri, name, version, "MLmodel", tmp)
            data = _onnx_data_of(tmp, uri) if mlmodel else "model.onnx"
            if not _fetch_version_file(self.tracking_uri, name, version, data, tmp):
                raise ModelLoadError(f"{uri}: version {version} of {name!r} holds no {data}")
            os.replace(tmp, target)
        except Exception as e:
            shutil.rmtree(tmp, ignore_errors=True)
            if target.is_dir():  # another worker won the race
                return
            raise ModelLoadError(f"{uri}: cannot download version {version} of {name!r}: {e}") from e


VERSION_FILE_ENDPOINT = "/model-versions/get-artifact"
"""MLflow's route for one file of a model version. It is authorised by the registered model alone, so
the router's identity needs READ on registered models and no right on the run that logged the version
(the artifact proxy behind ``mlflow.artifacts.download_artifacts`` checks the run's experiment)."""


def _fetch_version_file(tracking_uri: str | None, name: str, version: str, path: str, directory: Path) -> bool:
    """Write file ``path`` of a registered version under ``directory``; False when the version lacks it."""
    from mlflow import get_tracking_uri
    from mlflow.utils.credentials import get_default_host_creds
    from mlflow.utils.rest_utils import http_request

    dest = directory / path
    if directory.resolve() not in dest.resolve().parents:
        raise ModelLoadError(f"{name!r} version {version}: MLmodel names a file outside the model: {path!r}")
    creds = get_default_host_creds(tracking_uri or get_tracking_uri())
    params = {"name": name, "version": version, "path": path}
    resp = http_request(creds, VERSION_FILE_ENDPOINT, "GET", params=params, stream=True, max_retries=2,
                        timeout=120, raise_on_status=False)
    with resp:
        if resp.status_code == 404 or (resp.status_code >= 500 and "No such file" in resp.text[:2000]):
            return False
        if resp.status_code != 200:
            raise ModelLoadError(f"MLflow answered {resp.status_code} to {path} of {name!r} version {version}: "
                                 f"{resp.text[:300]}")
        dest.parent.mkdir(parents=True, exist_ok=True)
        with dest.open("wb") as out:
            shutil.copyfileobj(resp.raw, out)
    return True


def _onnx_data_of(directory: Path, source: str) -> str:
    try:
        meta = yaml.safe_load((directory / "MLmodel").read_text(encoding="utf-8")) or {}
        data = meta.get("flavors", {}).get("onnx", {}).get("data")
    except (OSError, yaml.YAMLError, AttributeError) as e:
        raise ModelLoadError(f"{source}: cannot read MLmodel: {e}") from e
    return data if isinstance(data, str) and data else "model.onnx"


class _Unreachable(Exception):
    """Raised when the registry cannot answer (down, network error, server error)."""


_NOT_FOUND = {"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND", "ENDPOINT_NOT_FOUND"}
INDEX = "resolved.json"
"""File in the cache directory: the last good resolution of each registry URI."""


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.\-]", "_", name)


__all__ = ["RegistryResolver", "ResolvedModel", "is_registry_uri", "resolve_local"]
