"""Read the router's prediction events for a time window and turn them into judge samples.

Events are Parquet files under ``<root>/date=YYYY-MM-DD/hour=HH/`` (``docs/events.md``). The
analytics engine (``MODELGATE_ANALYTICS_ENGINE``: DuckDB by default, or Spark; ``docs/analytics.md``)
reads only the hour folders the window touches, filters rows by model, time and ``shadow``, and
types every column, the sampled input records included (parsed by the engine's JSON functions into
number lists, :mod:`include.analytics.canary_sql`). This module only slices those Arrow columns into
numpy arrays: no per-event Python object is built. The root is a local folder or a URL pyarrow
understands (``s3://``, ``gs://``...).
"""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from include.canary.errors import CanaryError

log = logging.getLogger(__name__)


def events_root() -> str:
    """Return where the router writes events: ``MODELGATE_EVENTS_ROOT``, else ``<MODELGATE_HOME>/events``.

    Returns:
        A local path or URL.
    """
    from include.config import get_settings

    return get_settings().resolved_events_root()


def load_window(root: str, model: str, start: datetime, end: datetime) -> Any:
    """Return the primary (non-shadow) events of ``model`` with ``start <= ts < end``.

    Args:
        root: the events root (a missing folder is an empty window).
        model: the model name.
        start: window start (timezone-aware).
        end: window end (timezone-aware).

    Returns:
        A ``pyarrow.Table`` with columns :data:`include.analytics.canary_sql.COLUMNS` in time order
        (possibly empty).

    Raises:
        CanaryError: the window is invalid or the files cannot be read.
        ResidencyViolation: the events belong to another region than ``MODELGATE_REGION``.
    """
    import pyarrow as pa

    from include.analytics import canary_sql
    from include.analytics.engine import AnalyticsError, hour_folders, open_engine

    if start.tzinfo is None or end.tzinfo is None or end <= start:
        raise CanaryError(f"invalid event window {start} .. {end}: need timezone-aware start < end")
    from include.compliance.residency import check_events_region

    check_events_region(root)  # raises ResidencyViolation for another region's events
    local = "://" not in root or root.startswith("file://")
    empty = pa.table({c: pa.array([], type=pa.null()) for c in canary_sql.COLUMNS})
    if local and not Path(root.removeprefix("file://")).exists():
        log.info("no events root %s yet", root)
        return empty
    try:
        with open_engine() as engine:
            if not engine.register_events(root, hour_folders(start, end)):
                log.info("no event files for %s in %s .. %s under %s", model, start, end, root)
                return empty
            has_inputs = "inputs" in engine.columns("events")
            return engine.query(canary_sql.window_sql(model, start, end, has_inputs))
    except AnalyticsError as e:
        raise CanaryError(f"cannot read router events under {root}: {e}") from e


def _side(table: Any, variant: str, version: str | None) -> Any:
    import pyarrow.compute as pc

    mask = pc.equal(table.column("variant"), variant)
    if version is not None:
        mask = pc.and_(mask, pc.equal(table.column("model_version"), str(version)))
    return table.filter(mask)


def excluded_without_consent(table: Any, variant: str, version: str | None = None) -> int:
    """Count one variant's events in the window that :func:`samples` leaves out for lack of consent.

    Args:
        table: events from :func:`load_window`.
        variant: the variant name.
        version: when given, only events served by this model version.

    Returns:
        Events with ``consent`` false (0 for an empty window).
    """
    if table.num_rows == 0 or "consent" not in table.column_names:
        return 0
    import pyarrow.compute as pc

    side = _side(table, variant, version)
    return int(side.num_rows - (pc.sum(pc.cast(side.column("consent"), "int64")).as_py() or 0))


def samples(table: Any, variant: str, version: str | None = None) -> dict[str, np.ndarray]:
    """Turn one variant's events of consenting requests into judge samples.

    Requests without consent are left out (``docs/privacy.md``); :func:`excluded_without_consent`
    counts them for the evidence.

    Args:
        table: events from :func:`load_window`.
        variant: the variant name (``canary``, ``champion``).
        version: when given, only events served by this model version (``X-Model-Version``).

    Returns:
        ``error_rate`` (1 for status != 200, else 0), ``latency_ms`` (every request), ``score``
        (the prediction summary of successful requests) and ``inputs`` (the router's sampled input
        rows, one row each, for a judge metric of kind ``drift``).
    """
    if table.num_rows == 0:
        return {
            "error_rate": np.array([]),
            "latency_ms": np.array([]),
            "score": np.array([]),
            "inputs": np.empty((0, 0)),
        }
    import pyarrow.compute as pc

    side = _side(table, variant, version)
    if "consent" in side.column_names:
        side = side.filter(pc.equal(side.column("consent"), True))
    status = side.column("status").to_numpy(zero_copy_only=False)
    ok = pc.equal(side.column("status"), 200)
    score = side.filter(ok).column("score").cast("float64").fill_null(np.nan).to_numpy(zero_copy_only=False)
    return {
        "error_rate": (status != 200).astype(np.float64),
        "latency_ms": np.asarray(side.column("latency_ms").to_numpy(zero_copy_only=False), dtype=np.float64),
        "score": np.asarray(score, dtype=np.float64),
        "inputs": input_rows(side.column("inputs")) if "inputs" in side.column_names else np.empty((0, 0)),
    }


def input_rows(column: Any) -> np.ndarray:
    """Turn the window's parsed ``inputs`` (one number list per sampled record) into a matrix.

    Only the sampled records carry a value (``ROUTER_EVENTS_INPUT_SAMPLE`` of consenting requests);
    the engine has already parsed them (tensors concatenated in name order; null when not valid).
    Rows whose width differs from the most common width (another model signature) are skipped. Works
    on the Arrow buffers: list lengths, a mask and one flatten, whatever the number of records.

    Args:
        column: the ``inputs`` column of a window (``list<double>``, mostly null).

    Returns:
        A float64 array of shape ``(rows, width)``; ``(0, 0)`` without sampled rows.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if not pa.types.is_list(arr.type) and not pa.types.is_large_list(arr.type):
        return np.empty((0, 0))  # an empty window (null-typed column)
    arr = pc.drop_null(arr)
    if len(arr) == 0:
        return np.empty((0, 0))
    lengths = np.asarray(pc.list_value_length(arr).to_numpy(zero_copy_only=False), dtype=np.int64)
    width = int(np.bincount(lengths).argmax())
    keep = lengths == width
    if not keep.all():
        log.info("skipped %d sampled input rows whose width is not %d", int((~keep).sum()), width)
        arr = arr.filter(pa.array(keep))
    values = pc.list_flatten(arr).cast(pa.float64()).to_numpy(zero_copy_only=False)
    return np.asarray(values, dtype=np.float64).reshape(len(arr), width)
