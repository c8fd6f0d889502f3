"""Where registration may read artifacts from: the inbox, the MLflow artifact store, configured roots.

Allowed by default: files under ``<home>/inbox`` (a relative path is taken inside it) and the MLflow
artifact store (``runs:/...`` and ``mlflow-artifacts:/...``). More roots come from ONE setting,
``MODELGATE_REGISTRATION_ROOTS``: a comma-separated list of absolute directories and URL prefixes
(``https://models.example.com/onnx/``, ``s3://bucket/models/``). Everything else is refused before
anything is read: other local paths (also through ``..`` or a symlink, which are resolved first),
``file://`` outside the roots or on another host, and URLs to any other scheme, host, port or path.
"""

from __future__ import annotations

import logging
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from include.config import get_settings
from include.registry.errors import SourceRefused

log = logging.getLogger(__name__)

MLFLOW_SCHEMES = ("runs", "mlflow-artifacts")


@dataclass(frozen=True)
class Source:
    """An allowed artifact location: ``kind`` is ``path``, ``mlflow`` or ``url``."""

    kind: str
    location: str


@dataclass(frozen=True)
class Roots:
    """The allowed local directories and URL prefixes."""

    dirs: tuple[Path, ...]
    urls: tuple[urllib.parse.SplitResult, ...]

    def describe(self) -> str:
        """Return the roots as one line for error messages."""
        parts = [str(d) for d in self.dirs] + [f"{s}:/" for s in MLFLOW_SCHEMES] + [u.geturl() for u in self.urls]
        return ", ".join(parts)


def inbox() -> Path:
    """Return the inbox folder (``<home>/inbox``), created on demand."""
    d = get_settings().home / "inbox"
    d.mkdir(parents=True, exist_ok=True)
    return d


def allowed_roots() -> Roots:
    """Return the inbox plus the roots of ``MODELGATE_REGISTRATION_ROOTS``.

    Raises:
        SourceRefused: a configured root is neither an absolute directory nor a URL with a host.
    """
    dirs: list[Path] = [inbox().resolve()]
    urls: list[urllib.parse.SplitResult] = []
    for raw in (r.strip() for r in get_settings().registration_roots.split(",")):
        if not raw:
            continue
        parsed = urllib.parse.urlsplit(raw)
        if parsed.scheme and parsed.scheme != "file":
            if not parsed.netloc:
                raise SourceRefused(f"MODELGATE_REGISTRATION_ROOTS entry {raw!r} has no host")
            path = parsed.path if parsed.path.endswith("/") else parsed.path + "/"
            urls.append(parsed._replace(scheme=parsed.scheme.lower(), netloc=parsed.netloc.lower(), path=path))
            continue
        p = Path(urllib.parse.unquote(parsed.path) if parsed.scheme == "file" else raw)
        if not p.is_absolute():
            raise SourceRefused(f"MODELGATE_REGISTRATION_ROOTS entry {raw!r} must be an absolute directory")
        dirs.append(p.resolve())
    return Roots(tuple(dirs), tuple(urls))


def check_source(uri: str, field: str = "artifact_uri") -> Source:
    """Return where to read ``uri`` from, or refuse it when it is outside the allowed roots.

    Args:
        uri: a path (relative: inside the inbox), ``file://`` URL, MLflow artifact URI or URL.
        field: the conf field, named in the error.

    Returns:
        The resolved, allowed location.

    Raises:
        SourceRefused: the location is outside every allowed root, or malformed.
    """
    if not uri or "\x00" in uri:
        raise SourceRefused(f"{field} is empty or contains a NUL byte")
    roots = allowed_roots()
    hint = f"allowed: {roots.describe()} (put the file in the inbox, or add a root to MODELGATE_REGISTRATION_ROOTS)"
    parsed = urllib.parse.urlsplit(uri)
    scheme = parsed.scheme.lower()
    if scheme in MLFLOW_SCHEMES:
        return Source("mlflow", uri)
    if scheme in ("", "file") or len(scheme) == 1:  # len 1: a Windows drive letter, treated as a path
        if scheme == "file" and parsed.netloc not in ("", "localhost"):
            raise SourceRefused(f"{field} {uri!r} names another host; {hint}")
        raw = urllib.parse.unquote(parsed.path) if scheme == "file" else uri
        p = Path(raw).expanduser()
        resolved = (p if p.is_absolute() else roots.dirs[0] / p).resolve()
        if any(resolved.is_relative_to(d) for d in roots.dirs):
            return Source("path", str(resolved))
        raise SourceRefused(f"{field} {uri!r} is outside the allowed roots; {hint}")
    for root in roots.urls:
        if (
            scheme == root.scheme
            and parsed.netloc.lower() == root.netloc
            and parsed.path.startswith(root.path)
            and "/../" not in parsed.path + "/"
        ):
            return Source("url", uri)
    where = f"{scheme}://{parsed.netloc}" if parsed.netloc else f"{scheme}:"
    raise SourceRefused(f"{field} {uri!r}: {where} is not an allowed root; {hint}")
