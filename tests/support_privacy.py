"""Event files for the data-protection tests: written by the router's own sink, one subject in three hours."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow.parquet as pq
from router.events import EventSink

SUBJECT = "person-42"
T0 = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)


def _us(dt: datetime) -> int:
    return int(dt.timestamp() * 1_000_000)


def write_events(root: Path) -> None:
    """Four hourly partitions, two files each; the subject has records in hours 10, 11 and 12 only."""
    sink = EventSink(str(root), flush_rows=10**6, flush_seconds=60, max_buffer=10**6)
    n = 0
    for hour in range(4):
        for part in range(2):
            for i in range(50):
                unit = SUBJECT if (hour < 3 and i % 10 == part) else f"unit-{i % 17}"
                inputs = json.dumps({"input": [float(n), 1.0]}) if i % 3 == 0 else None
                ts = _us(T0 + timedelta(hours=hour, seconds=part * 60 + i))
                sink.append(
                    (ts, f"r{n}", "churn", "champion", "1", unit, True, 1.0, 200, 1, 0.5, False, None, inputs)
                )
                n += 1
            sink.flush()  # one file per (hour, part)
    sink.close()


def rows_of(root: Path) -> list[dict]:
    """Every record of the visible Parquet files under ``root``."""
    out = []
    for f in sorted(root.rglob("*.parquet")):
        if not f.name.startswith("."):
            out.extend(pq.read_table(f).to_pylist())
    return out
