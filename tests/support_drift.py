"""Event files for drift tests: the contract's schema plus the router's nullable ``inputs`` column."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from modelgate_contracts.events import FIELDS, event_schema


def write_events(
    root: Path, model: str, version: str, start: datetime, scores: np.ndarray, inputs: list[str | None] | None
) -> None:
    """Write one event file per hour touched, one event per second from ``start``.

    ``inputs=None`` writes files without the ``inputs`` column, as a router older than input sampling.
    """
    ts = [start + timedelta(seconds=i) for i in range(scores.size)]
    cols = {
        "ts": pa.array(ts, type=pa.timestamp("us", tz="UTC")),
        "request_id": [f"r{i}" for i in range(scores.size)],
        "model": [model] * scores.size,
        "variant": ["champion"] * scores.size,
        "model_version": [version] * scores.size,
        "unit_id": [f"u{i}" for i in range(scores.size)],
        "consent": [True] * scores.size,
        "latency_ms": [1.0] * scores.size,
        "status": pa.array([200] * scores.size, type=pa.int32()),
        "rows": pa.array([1] * scores.size, type=pa.int32()),
        "score": scores.tolist(),
        "shadow": [False] * scores.size,
        "error": [None] * scores.size,
    }
    cols["inputs"] = inputs if inputs is not None else [None] * scores.size
    schema = event_schema()
    if inputs is None:  # a file of a router from before sampled input logging: no 'inputs' column
        schema = schema.remove(schema.get_field_index("inputs"))
    table = pa.table({k: cols[k] for k in FIELDS if k in schema.names}, schema=schema)
    hours = np.array([t.replace(minute=0, second=0, microsecond=0) for t in ts])
    for hour in sorted(set(hours)):
        folder = root / f"date={hour:%Y-%m-%d}" / f"hour={hour:%H}"
        folder.mkdir(parents=True, exist_ok=True)
        idx = np.nonzero(hours == hour)[0]
        pq.write_table(table.take(pa.array(idx)), folder / f"{model}-{version}-{start:%H%M%S}.parquet")
