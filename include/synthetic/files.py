"""Atomic file output: write to a temporary file in the target folder, then ``os.replace``."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any


def atomic_write(path: Path | str, write: Callable[[Path], Any]) -> Path:
    """Produce ``path`` atomically: ``write`` fills a temporary sibling, which then replaces ``path``.

    Readers see either the old file or the complete new one, never a partial file. The parent
    folder is created when missing.

    Args:
        path: the file to produce.
        write: called with the temporary path; must write the whole content there.

    Returns:
        ``path`` as a ``Path``.

    Raises:
        OSError: when the folder cannot be created or the file cannot be written or moved.
        Exception: whatever ``write`` raises; the temporary file is removed first.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; outputs are meant to be shared
        write(tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    return target


def atomic_write_bytes(path: Path | str, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_write`).

    Args:
        path: the file to produce.
        data: its full content.

    Returns:
        ``path`` as a ``Path``.

    Raises:
        OSError: when the file cannot be written or moved into place.
    """
    return atomic_write(path, lambda tmp: tmp.write_bytes(data))
