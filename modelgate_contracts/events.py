"""Prediction event records: field order of the tuples the router appends, and the Arrow schema.

The router writes these records as Parquet under ``<root>/date=YYYY-MM-DD/hour=HH/``
(``docs/events.md``); every reader and every synthetic generator uses this one definition.
"""

from __future__ import annotations

from typing import Any

FIELDS = (
    "ts",
    "request_id",
    "model",
    "variant",
    "model_version",
    "unit_id",
    "consent",
    "latency_ms",
    "status",
    "rows",
    "score",
    "shadow",
    "error",
    "inputs",
)
"""Field names in the order of an event tuple and of the file's columns."""

Record = tuple[
    int,
    str,
    str,
    str,
    str,
    "str | None",
    bool,
    float,
    int,
    int,
    "float | None",
    bool,
    "str | None",
    "str | None",
]
"""One event as the router appends it: ``ts`` in microseconds since the epoch (UTC), then ``FIELDS``."""

HOUR_US = 3_600_000_000
"""Microseconds in an hour: ``ts // HOUR_US`` is a record's UTC hour partition."""


def event_schema() -> Any:
    """Return the Arrow schema of an event file.

    Returns:
        The ``pyarrow.Schema``, columns in ``FIELDS`` order.
    """
    import pyarrow as pa

    return pa.schema(
        [
            pa.field("ts", pa.timestamp("us", tz="UTC"), nullable=False),
            pa.field("request_id", pa.string(), nullable=False),
            pa.field("model", pa.string(), nullable=False),
            pa.field("variant", pa.string(), nullable=False),
            pa.field("model_version", pa.string(), nullable=False),
            pa.field("unit_id", pa.string()),
            pa.field("consent", pa.bool_(), nullable=False),
            pa.field("latency_ms", pa.float64(), nullable=False),
            pa.field("status", pa.int32(), nullable=False),
            pa.field("rows", pa.int32(), nullable=False),
            pa.field("score", pa.float64()),
            pa.field("shadow", pa.bool_(), nullable=False),
            pa.field("error", pa.string()),
            # JSON object {input name: flat list of one row's values}, for a sampled share of scored
            # requests of consenting units (ROUTER_EVENTS_INPUT_SAMPLE); null otherwise
            pa.field("inputs", pa.string()),
        ]
    )
