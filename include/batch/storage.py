"""File-system helpers of the batch job: listing partitions, atomic writes, input fingerprints.

Paths are local paths or URLs that :func:`pyarrow.fs.FileSystem.from_uri` understands (``s3://``,
``gs://``, ``file://``), so the same job reads a local folder in the embedded default and object
storage in production.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

import pyarrow.fs as pafs

from include.batch.errors import BatchInputError, BatchOutputError

log = logging.getLogger(__name__)

_CHUNK = 1 << 20
TMP_MARK = ".tmp-"
"""Temporary files are named ``.<name>.tmp-<pid>``: hidden, and never matching ``*.parquet``."""


def filesystem(path: str) -> tuple[pafs.FileSystem, str]:
    """Return the file system holding ``path`` and the path within it.

    Args:
        path: a local path or a URL (``s3://bucket/key``, ``file:///abs``).

    Returns:
        ``(filesystem, path inside it)``; local paths are made absolute.
    """
    if "://" in path:
        fs, inner = pafs.FileSystem.from_uri(path)
        return fs, inner
    return pafs.LocalFileSystem(), str(Path(path).expanduser().resolve())


def join(base: str, name: str) -> str:
    """Join a folder path of a pyarrow file system and a file name."""
    return f"{base.rstrip('/')}/{name}"


def basename(path: str) -> str:
    """Return the last component of a pyarrow file-system path."""
    return path.rstrip("/").rsplit("/", 1)[-1]


def is_partition_file(name: str) -> bool:
    """Return whether a file name is a data partition (``*.parquet``, not hidden, not ``_``-prefixed)."""
    return name.endswith(".parquet") and not name.startswith((".", "_"))


def list_input_files(fs: pafs.FileSystem, path: str, shown: str) -> list[str]:
    """List the Parquet files of an input: the file itself, or a folder's partition files, sorted.

    Args:
        fs: the file system.
        path: a Parquet file or a folder of them.
        shown: the path as the user gave it, for messages.

    Returns:
        Sorted file paths.

    Raises:
        BatchInputError: the path does not exist, or the folder holds no Parquet files.
    """
    info = fs.get_file_info(path)
    if info.type == pafs.FileType.File:
        return [path]
    if info.type != pafs.FileType.Directory:
        raise BatchInputError(f"{shown}: input not found")
    files = sorted(
        i.path
        for i in fs.get_file_info(pafs.FileSelector(path, recursive=False))
        if i.type == pafs.FileType.File and is_partition_file(i.base_name)
    )
    if not files:
        raise BatchInputError(f"{shown}: the folder holds no *.parquet files")
    return files


def fingerprint(fs: pafs.FileSystem, path: str) -> str:
    """Return ``sha256:<hex>`` of a file's bytes (the input fingerprint of the manifest).

    Args:
        fs: the file system.
        path: the file.

    Returns:
        The content hash.

    Raises:
        BatchInputError: the file cannot be read.
    """
    h = hashlib.sha256()
    try:
        with fs.open_input_stream(path) as f:
            while chunk := f.read(_CHUNK):
                h.update(chunk)
    except OSError as e:
        raise BatchInputError(f"{path}: cannot read the file ({e})") from e
    return f"sha256:{h.hexdigest()}"


def tmp_name(fs: pafs.FileSystem, folder: str, name: str) -> str:
    """Return a temporary path next to ``folder/name`` (same file system, so the rename is atomic)."""
    return join(folder, f".{name}{TMP_MARK}{os.getpid()}")


def remove_stale_tmp(fs: pafs.FileSystem, folder: str, name: str) -> None:
    """Delete temporary files of ``name`` left behind by a killed run."""
    prefix = f".{name}{TMP_MARK}"
    for info in fs.get_file_info(pafs.FileSelector(folder, recursive=False, allow_not_found=True)):
        if info.base_name.startswith(prefix):
            log.warning("event=remove_stale_tmp path=%s", info.path)
            delete_quietly(fs, info.path)


def delete_quietly(fs: pafs.FileSystem, path: str) -> None:
    """Delete a file if it exists; never raise."""
    try:
        fs.delete_file(path)
    except (OSError, FileNotFoundError):
        pass


def write_json_atomic(fs: pafs.FileSystem, path: str, doc: dict[str, Any]) -> None:
    """Write a JSON document to a temporary file and rename it into place.

    Args:
        fs: the file system.
        path: the final path.
        doc: the document.

    Raises:
        BatchOutputError: the file cannot be written.
    """
    folder, name = path.rsplit("/", 1)
    tmp = tmp_name(fs, folder, name)
    try:
        with fs.open_output_stream(tmp) as f:
            f.write((json.dumps(doc, indent=2, sort_keys=True) + "\n").encode())
        fs.move(tmp, path)
    except OSError as e:
        delete_quietly(fs, tmp)
        raise BatchOutputError(f"{path}: cannot write ({e})") from e


def read_json(fs: pafs.FileSystem, path: str) -> dict[str, Any] | None:
    """Return a JSON document, or ``None`` when the file is missing or unreadable."""
    try:
        with fs.open_input_stream(path) as f:
            doc = json.loads(f.read())
    except (OSError, FileNotFoundError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def exists(fs: pafs.FileSystem, path: str) -> bool:
    """Return whether a file exists."""
    return bool(fs.get_file_info(path).type == pafs.FileType.File)
