"""Download a registered model version's ONNX file through the registry, not through its run.

MLflow serves a version's files at ``/model-versions/get-artifact?name=&version=&path=`` and
authorises that route by the registered model alone. An identity with ``READ`` on registered models
and nothing else (``router``, ``batch``: docs/security.md) can therefore load the version it scores
without any right on the experiment or run the version was logged from, which the artifact proxy
behind ``mlflow.artifacts.download_artifacts`` would require. Which file is the model comes from the
version's ``MLmodel`` (``flavors.onnx.data``); a version without one must hold ``model.onnx``.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from include.registry.errors import ModelNotFound, RegistryError

log = logging.getLogger(__name__)

ENDPOINT = "/model-versions/get-artifact"
"""MLflow's route for one file of a model version (``mlflow/server/__init__.py``)."""

DEFAULT_FILE = "model.onnx"


def fetch_version_file(tracking_uri: str, name: str, version: str, path: str, dest: Path) -> bool:
    """Write file ``path`` of version ``version`` of ``name`` to ``dest``; False when the version lacks it.

    Raises:
        RegistryError: MLflow refused the request (401/403 name the identity problem) or failed.
    """
    from mlflow.utils.credentials import get_default_host_creds
    from mlflow.utils.rest_utils import http_request

    params = {"name": name, "version": version, "path": path}
    try:
        resp = http_request(
            get_default_host_creds(tracking_uri), ENDPOINT, "GET", params=params, stream=True,
            max_retries=2, timeout=120, raise_on_status=False,
        )
    except Exception as e:  # network errors of the HTTP client
        raise RegistryError(f"cannot download {path} of {name!r} version {version}: {e}") from e
    with resp:
        if resp.status_code == 404 or (resp.status_code >= 500 and "No such file" in resp.text[:2000]):
            return False
        if resp.status_code != 200:
            raise RegistryError(
                f"MLflow answered {resp.status_code} to the download of {path} of {name!r} version {version}"
                f" ({_why(resp.status_code)}): {resp.text[:300]}"
            )
        dest.parent.mkdir(parents=True, exist_ok=True)
        with dest.open("wb") as out:
            shutil.copyfileobj(resp.raw, out)
    return True


def _why(status: int) -> str:
    if status == 401:
        return "no or wrong credentials for this process's MLflow identity"
    if status == 403:
        return "this process's MLflow identity may not read this registered model"
    return "server error"


def download_version_onnx(tracking_uri: str, name: str, version: str, dest_dir: Path) -> Path:
    """Download the ONNX file of a registered version (and its ``MLmodel``) into ``dest_dir``.

    Returns:
        The local ONNX file.

    Raises:
        ModelNotFound: the version holds neither an ONNX ``MLmodel`` nor ``model.onnx``.
        RegistryError: MLflow refused or failed a download.
    """
    import yaml  # mlflow's dependency; imported here, where it is used

    data = DEFAULT_FILE
    mlmodel = dest_dir / "MLmodel"
    if fetch_version_file(tracking_uri, name, version, "MLmodel", mlmodel):
        try:
            meta = yaml.safe_load(mlmodel.read_text(encoding="utf-8")) or {}
            found = meta.get("flavors", {}).get("onnx", {}).get("data")
        except (yaml.YAMLError, AttributeError) as e:
            raise ModelNotFound(f"{name!r} version {version}: unreadable MLmodel: {e}") from e
        if isinstance(found, str) and found:
            data = found
    target = dest_dir / data
    if dest_dir.resolve() not in target.resolve().parents:
        raise ModelNotFound(f"{name!r} version {version}: MLmodel names a file outside the model: {data!r}")
    if not fetch_version_file(tracking_uri, name, version, data, target):
        raise ModelNotFound(f"{name!r} version {version} holds no {data} (no ONNX model in this version)")
    log.info("downloaded %s of %s version %s through the registry", data, name, version)
    return target
