"""Read the router's prediction events for a time window and turn them into judge samples.

Events are Parquet files under ``<root>/date=YYYY-MM-DD/hour=HH/`` (``docs/events.md``); only the
hour folders the window touches are listed, and rows are filtered by model, time and ``shadow``.
The root is a local folder or a URL pyarrow understands (``s3://``, ``gs://``...).
"""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from include.canary.errors import CanaryError

log = logging.getLogger(__name__)

COLUMNS = ["ts", "model", "variant", "model_version", "status", "latency_ms", "score", "shadow"]


def events_root() -> str:
    """Return where the router writes events: ``MODELGATE_EVENTS_ROOT``, else ``<MODELGATE_HOME>/events``.

    Returns:
        A local path or URL.
    """
    env = os.environ.get("MODELGATE_EVENTS_ROOT")
    if env:
        return env
    from include.config import get_settings

    return str(get_settings().home / "events")


def _hours(start: datetime, end: datetime) -> list[str]:
    t = start.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    out = []
    while t <= end:
        out.append(f"date={t:%Y-%m-%d}/hour={t:%H}")
        t += timedelta(hours=1)
    return out


def _list_files(root: str, start: datetime, end: datetime) -> tuple[Any, list[str]]:
    from pyarrow import fs as pafs

    if "://" in root and not root.startswith("file://"):
        filesystem, base = pafs.FileSystem.from_uri(root)
    else:
        filesystem, base = pafs.LocalFileSystem(), str(Path(root.removeprefix("file://")).resolve())
    files: list[str] = []
    for part in _hours(start, end):
        sel = pafs.FileSelector(f"{base.rstrip('/')}/{part}", allow_not_found=True)
        for info in filesystem.get_file_info(sel):
            name = info.base_name
            if info.type == pafs.FileType.File and name.endswith(".parquet") and not name.startswith("."):
                files.append(info.path)
    return filesystem, sorted(files)


def load_window(root: str, model: str, start: datetime, end: datetime) -> Any:
    """Return the primary (non-shadow) events of ``model`` with ``start <= ts < end``.

    Args:
        root: the events root.
        model: the model name.
        start: window start (timezone-aware).
        end: window end (timezone-aware).

    Returns:
        A ``pyarrow.Table`` with columns :data:`COLUMNS` (possibly empty).

    Raises:
        CanaryError: the window is invalid or the files cannot be read.
    """
    import pyarrow as pa
    import pyarrow.dataset as ds

    if start.tzinfo is None or end.tzinfo is None or end <= start:
        raise CanaryError(f"invalid event window {start} .. {end}: need timezone-aware start < end")
    try:
        filesystem, files = _list_files(root, start, end)
        if not files:
            log.info("no event files for %s in %s .. %s under %s", model, start, end, root)
            return pa.table({c: pa.array([], type=pa.null()) for c in COLUMNS})
        dataset = ds.dataset(files, format="parquet", filesystem=filesystem)
        flt = (
            (ds.field("model") == model)
            & (ds.field("shadow") == False)  # noqa: E712 - a pyarrow expression, not a Python comparison
            & (ds.field("ts") >= pa.scalar(start.astimezone(UTC), type=pa.timestamp("us", tz="UTC")))
            & (ds.field("ts") < pa.scalar(end.astimezone(UTC), type=pa.timestamp("us", tz="UTC")))
        )
        return dataset.to_table(columns=COLUMNS, filter=flt)
    except (OSError, pa.ArrowException) as e:
        raise CanaryError(f"cannot read router events under {root}: {e}") from e


def samples(table: Any, variant: str, version: str | None = None) -> dict[str, np.ndarray]:
    """Turn one variant's events into judge samples.

    Args:
        table: events from :func:`load_window`.
        variant: the variant name (``canary``, ``champion``).
        version: when given, only events served by this model version (``X-Model-Version``).

    Returns:
        ``error_rate`` (1 for status != 200, else 0), ``latency_ms`` (every request) and ``score``
        (the prediction summary of successful requests).
    """
    if table.num_rows == 0:
        return {"error_rate": np.array([]), "latency_ms": np.array([]), "score": np.array([])}
    variants = np.asarray(table.column("variant").to_pylist(), dtype=object)
    mask = variants == variant
    if version is not None:
        mask &= np.asarray(table.column("model_version").to_pylist(), dtype=object) == str(version)
    status = np.asarray(table.column("status").to_numpy(zero_copy_only=False))[mask]
    latency = np.asarray(table.column("latency_ms").to_numpy(zero_copy_only=False), dtype=np.float64)[mask]
    score = np.asarray(
        [np.nan if s is None else s for s in table.column("score").to_pylist()], dtype=np.float64
    )[mask]
    return {
        "error_rate": (status != 200).astype(np.float64),
        "latency_ms": latency,
        "score": score[status == 200],
    }
