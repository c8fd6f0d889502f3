"""Atomic rewrites of Parquet files: the old file or the new one, never half of either.

A rewrite writes the kept rows to a hidden temporary file next to the original (``.<name>.rewrite``:
readers of the event layout, ``pyarrow.dataset`` included, skip names starting with a dot), flushes
it to disk (``fsync``), renames it over the original (``os.replace``, atomic on POSIX) and syncs the
folder. A process killed at any point leaves the original in place, or the complete new file, plus
at most a stale temporary file that the next run removes (:func:`remove_stale_temps`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from include.compliance.errors import ComplianceError

if TYPE_CHECKING:
    import pyarrow as pa

log = logging.getLogger(__name__)

TEMP_SUFFIX = ".rewrite"
"""Suffix of the temporary file of a rewrite (its name also starts with a dot)."""

WRITE_ROWS = 65_536
"""Rows per row group written to the temporary file."""

Progress = Callable[[str, Path], None]
"""Observer of a rewrite: called with ``("writing" | "written" | "replaced" | "removed", path)``."""


@dataclass(frozen=True)
class FileResult:
    """What a rewrite did to one file.

    Attributes:
        path: the file.
        rows_before: rows it held.
        rows_removed: rows removed (0: the file was left untouched).
        deleted: no row was left, so the file was deleted instead of rewritten.
    """

    path: Path
    rows_before: int
    rows_removed: int
    deleted: bool


def parquet_files(root: Path) -> Iterator[Path]:
    """Yield every visible ``*.parquet`` file under ``root`` in a stable order (none if it is missing)."""
    if not root.exists():
        return
    for p in sorted(root.rglob("*.parquet")):
        if p.is_file() and not any(part.startswith((".", "_")) for part in p.relative_to(root).parts):
            yield p


def remove_stale_temps(root: Path) -> int:
    """Delete temporary files a killed rewrite left under ``root``.

    Args:
        root: the folder.

    Returns:
        How many were removed.
    """
    n = 0
    if root.exists():
        for p in root.rglob(f".*{TEMP_SUFFIX}"):
            p.unlink(missing_ok=True)
            log.warning("removed %s, left by an interrupted rewrite", p)
            n += 1
    return n


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_temp(table: pa.Table, temp: Path, progress: Progress | None) -> None:
    import pyarrow.parquet as pq

    with open(temp, "wb") as fh:
        with pq.ParquetWriter(fh, table.schema) as writer:
            for i, batch in enumerate(table.to_batches(max_chunksize=WRITE_ROWS)):
                writer.write_batch(batch)
                if i == 0 and progress is not None:
                    progress("writing", temp)
        fh.flush()
        os.fsync(fh.fileno())


def drop_rows(path: Path, column: str, value: str, progress: Progress | None = None) -> FileResult:
    """Remove the rows of ``path`` whose ``column`` equals ``value``, atomically.

    The file is read only when its ``column`` holds ``value``; a file without such rows is left as
    it is (so a second run changes nothing). When no row would remain the file is deleted.

    Args:
        path: a Parquet file.
        column: the column to match.
        value: the value whose rows go.
        progress: observer of the stages (see :data:`Progress`).

    Returns:
        What was done.

    Raises:
        ComplianceError: the file cannot be read or written.
    """
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
        if column not in pf.schema_arrow.names:
            return FileResult(path, pf.metadata.num_rows, 0, False)
        keys = pf.read(columns=[column]).column(column)
        hit = pc.equal(keys, value)
        n_hit = int(pc.sum(hit).as_py() or 0)
        total = len(keys)
        if n_hit == 0:
            return FileResult(path, total, 0, False)
        if n_hit == total:
            path.unlink()
            _fsync_dir(path.parent)
            if progress is not None:
                progress("removed", path)
            return FileResult(path, total, n_hit, True)
        table = pf.read()
        kept = table.filter(pc.invert(pc.fill_null(hit, False)))
        temp = path.with_name(f".{path.name}{TEMP_SUFFIX}")
        _write_temp(kept, temp, progress)
        if progress is not None:
            progress("written", temp)
        os.replace(temp, path)
        _fsync_dir(path.parent)
        if progress is not None:
            progress("replaced", path)
        return FileResult(path, total, n_hit, False)
    except pa.ArrowException as e:  # a corrupt or foreign file
        raise ComplianceError(f"cannot read {path} as Parquet: {e}") from e
    except OSError as e:
        raise ComplianceError(f"cannot rewrite {path}: {e}") from e
