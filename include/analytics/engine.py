"""The analytics engine interface and its selection (one setting: ``MODELGATE_ANALYTICS_ENGINE``).

An engine registers the event files and other tables as views, and runs SQL whose result is small
(aggregates), returned as a ``pyarrow.Table``. The SQL itself lives in the ``*_sql`` modules and is
the same for every engine.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Literal, Protocol

from include.errors import ModelgateError

if TYPE_CHECKING:
    import pyarrow as pa

log = logging.getLogger(__name__)

EngineName = Literal["duckdb", "spark"]
Kind = Literal["number", "bool", "string", "timestamp", "other"]

DAY_US = 86_400_000_000
"""Microseconds per day."""

INPUT_VECTOR = "input_vector"
"""The SQL function both runners define (DuckDB as macros, Spark as SQL functions) that parses the
router's sampled input record (JSON ``{tensor: [flat values of one row]}``) into ``ARRAY<DOUBLE>``:
the tensors' values concatenated in name order (byte order of the names). NULL for a null or
malformed record, one that is not an object of number arrays, or one with a null value."""

_SAFE = re.compile(r"[^'\\\x00]*")


class AnalyticsError(ModelgateError):
    """Raised when event data cannot be analysed: missing files or columns, bad values, engine failure."""

    code = "analytics_error"


class Engine(Protocol):
    """What a query engine offers the reductions."""

    name: str

    def register_events(self, root: str, hours: list[str] | None = None, merge_schemas: bool = True) -> bool:
        """Register the event files under ``root`` as view ``events`` (with ``date`` and ``hour``).

        Args:
            root: the events root (local folder or URL).
            hours: only these partition folders (``date=YYYY-MM-DD/hour=HH``); None for all.
            merge_schemas: read every file's schema and merge them, so that the columns an older router
                did not write (``inputs``) read as null. False when the queries read only the
                contract's original columns: columns are then matched by name against one file's
                schema, which saves opening every file's footer before the scan (DuckDB: memory per
                file, and at 100M events a scan twice as long).

        Returns:
            False when there is no event file (the view is then not registered).

        Raises:
            AnalyticsError: the root does not exist or cannot be read.
        """
        ...

    def register_table(self, name: str, path: str, fmt: str) -> None:
        """Register a Parquet file or folder, or a CSV file, as view ``name``.

        Raises:
            AnalyticsError: the path does not exist or cannot be read as ``fmt``.
        """
        ...

    def columns(self, view: str) -> dict[str, Kind]:
        """Column name → kind of a registered view."""
        ...

    def query(self, sql: str) -> pa.Table:
        """Run SQL and return its (small) result.

        Raises:
            AnalyticsError: the engine failed; the message carries its error.
        """
        ...

    def close(self) -> None:
        """Drop the views and release the connection."""
        ...


def literal(value: str, what: str) -> str:
    """Quote a string for the SQL of every engine (single quotes; quotes and backslashes refused).

    Args:
        value: the string.
        what: what it is, for the message.

    Returns:
        The SQL literal.

    Raises:
        AnalyticsError: the string holds a quote, a backslash or a NUL.
    """
    if not _SAFE.fullmatch(value):
        raise AnalyticsError(f"{what} {value!r} holds a quote, backslash or NUL; not usable in a query")
    return f"'{value}'"


def micros(t: datetime) -> int:
    """Microseconds since the epoch of a timezone-aware time (naive times are taken as UTC)."""
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    delta = t.astimezone(UTC) - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def hour_folders(start: datetime, end: datetime) -> list[str]:
    """The event partition folders (``date=YYYY-MM-DD/hour=HH``) a window ``[start, end)`` touches.

    Args:
        start: window start (timezone-aware).
        end: window end (timezone-aware).

    Returns:
        The folders, oldest first (the hour of ``end`` included: the filter on ``ts`` is exact).
    """
    t = start.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    out = []
    while t <= end:
        out.append(f"date={t:%Y-%m-%d}/hour={t:%H}")
        t += timedelta(hours=1)
    return out


def window_where(model: str, start: datetime, end: datetime) -> str:
    """The filter of one model's primary events with ``start <= ts < end`` (partition pruning included).

    Args:
        model: the model name.
        start: window start (timezone-aware).
        end: window end (timezone-aware).

    Returns:
        A SQL condition over the view ``events``.
    """
    return (
        f"date >= '{start:%Y-%m-%d}' AND date <= '{end:%Y-%m-%d}'"
        f" AND unix_micros(ts) >= {micros(start)} AND unix_micros(ts) < {micros(end)}"
        f" AND model = {literal(model, 'model')} AND NOT shadow"
    )


def engine_name() -> EngineName:
    """Return the configured engine (``MODELGATE_ANALYTICS_ENGINE``, default ``duckdb``)."""
    from include.config import get_settings

    return get_settings().analytics_engine


@contextmanager
def open_engine(name: str | None = None) -> Iterator[Engine]:
    """Open the configured (or named) engine for one analysis, and close it afterwards.

    Args:
        name: ``duckdb`` or ``spark``; None reads the setting.

    Yields:
        The engine.

    Raises:
        AnalyticsError: an unknown engine name.
    """
    from include.config import get_settings

    settings = get_settings()
    chosen = name or settings.analytics_engine
    engine: Engine
    if chosen == "duckdb":
        from include.analytics.duck import DuckDBEngine

        engine = DuckDBEngine(
            memory_limit=settings.analytics_memory_limit,
            threads=settings.analytics_threads or os.cpu_count() or 1,
            temp_dir=settings.home / "analytics-tmp",
        )
    elif chosen == "spark":
        from include.analytics.spark import SparkEngine

        engine = SparkEngine(master=settings.spark_master)
    else:
        raise AnalyticsError(f"unknown analytics engine {chosen!r}; known: duckdb, spark")
    log.debug("analytics engine %s", engine.name)
    try:
        yield engine
    finally:
        engine.close()
