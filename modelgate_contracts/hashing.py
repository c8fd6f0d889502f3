"""File digests: the sha256 that the manifest records and every loader verifies."""

from __future__ import annotations

import hashlib
from pathlib import Path

CHUNK = 1 << 20
"""Bytes read per step."""


def sha256_file(path: Path | str) -> str:
    """Return the hex sha256 of a file's bytes, read in 1 MiB chunks.

    Args:
        path: the file.

    Returns:
        The lowercase hex digest.

    Raises:
        OSError: the file cannot be read.
    """
    h = hashlib.sha256()
    with Path(path).open("rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()
