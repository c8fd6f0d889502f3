"""Fetching model artifacts and hashing them."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import urllib.parse
from pathlib import Path
from typing import TYPE_CHECKING

from include.registry.errors import ArtifactNotFound, ArtifactTooLarge
from modelgate_contracts.hashing import sha256_file

__all__ = ["fetch_artifact", "sha256_file"]

if TYPE_CHECKING:
    from include.registry.sources import Source

log = logging.getLogger(__name__)

_CHUNK = 1024 * 1024


def fetch_artifact(uri: str, dest_dir: Path, max_bytes: int) -> Path:
    """Copy the artifact at ``uri`` into ``dest_dir`` atomically and return its local path.

    ``uri`` is a local path, a ``file://`` URL, or any URL fsspec understands (``http(s)://``,
    ``s3://`` when the matching fsspec backend is installed).

    Args:
        uri: where the ``.onnx`` file is.
        dest_dir: folder to copy it into.
        max_bytes: refuse artifacts larger than this.

    Returns:
        The local copy.

    Raises:
        ArtifactNotFound: the artifact does not exist or cannot be read.
        ArtifactTooLarge: the artifact exceeds ``max_bytes``.
    """
    if not uri or not isinstance(uri, str):
        raise ArtifactNotFound("artifact_uri is empty")
    parsed = urllib.parse.urlparse(uri)
    dest_dir.mkdir(parents=True, exist_ok=True)
    name = Path(parsed.path).name or "model.onnx"
    target = dest_dir / name
    if parsed.scheme in ("", "file"):
        src = Path(urllib.parse.unquote(parsed.path) if parsed.scheme == "file" else uri).expanduser()
        if not src.is_file():
            raise ArtifactNotFound(f"artifact {uri!r} does not exist or is not a file")
        size = src.stat().st_size
        if size > max_bytes:
            raise ArtifactTooLarge(f"artifact {uri!r} is {size} bytes, over the limit of {max_bytes}")
        _atomic_copy_file(src, target)
        return target
    return _fetch_remote(uri, target, max_bytes)


def fetch_source(source: Source, dest_dir: Path, max_bytes: int, tracking_uri: str | None = None) -> Path:
    """Copy an allowed source (see :mod:`include.registry.sources`) into ``dest_dir``.

    ``tracking_uri`` is the MLflow server of an MLflow source (None: the settings').

    Raises:
        ArtifactNotFound: the artifact does not exist, cannot be read, or is not one file.
        ArtifactTooLarge: the artifact exceeds ``max_bytes``.
    """
    if source.kind != "mlflow":
        return fetch_artifact(source.location, dest_dir, max_bytes)
    import mlflow
    from mlflow.exceptions import MlflowException

    from include.config import get_settings

    uri = tracking_uri or get_settings().tracking_uri
    dest_dir.mkdir(parents=True, exist_ok=True)
    try:
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=source.location, dst_path=str(dest_dir),
                                                         tracking_uri=uri, registry_uri=uri))  # fmt: skip
    except (MlflowException, OSError) as e:
        raise ArtifactNotFound(f"could not fetch artifact {source.location!r} from MLflow: {e}") from e
    if local.is_dir():
        found = sorted(local.rglob("*.onnx")) or sorted(p for p in local.rglob("*") if p.is_file())
        if len(found) != 1:
            raise ArtifactNotFound(f"{source.location!r} holds {len(found)} candidate files, expected one")
        local = found[0]
    size = local.stat().st_size
    if size > max_bytes:
        raise ArtifactTooLarge(f"artifact {source.location!r} is {size} bytes, over the limit of {max_bytes}")
    return local


def _atomic_copy_file(src: Path, target: Path) -> None:
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".fetch-")
    try:
        with os.fdopen(fd, "wb") as out, open(src, "rb") as inp:
            shutil.copyfileobj(inp, out, _CHUNK)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _fetch_remote(uri: str, target: Path, max_bytes: int) -> Path:
    import fsspec

    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".fetch-")
    try:
        total = 0
        with os.fdopen(fd, "wb") as out, fsspec.open(uri, "rb") as inp:
            for chunk in iter(lambda: inp.read(_CHUNK), b""):
                total += len(chunk)
                if total > max_bytes:
                    raise ArtifactTooLarge(f"artifact {uri!r} is over the limit of {max_bytes} bytes")
                out.write(chunk)
        os.replace(tmp, target)
    except ArtifactTooLarge:
        Path(tmp).unlink(missing_ok=True)
        raise
    except (OSError, ValueError, ImportError) as e:
        Path(tmp).unlink(missing_ok=True)
        raise ArtifactNotFound(f"could not fetch artifact {uri!r}: {e}") from e
    log.info("fetched %s (%d bytes)", uri, total)
    return target
