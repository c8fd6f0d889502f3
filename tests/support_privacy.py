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


NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
RETENTION_HOURS = {  # partition -> records
    "date=2026-08-23/hour=10": 5,  # 100 days old
    "date=2026-11-01/hour=10": 7,  # ends 11:00, 30 days and 1 hour before NOW
    "date=2026-11-01/hour=12": 3,  # ends 13:00: younger than 30 days
    "date=2026-11-30/hour=09": 4,
}


def write_hours(root: Path) -> None:
    """Events in the hour partitions of ``RETENTION_HOURS`` (retention tests)."""
    sink = EventSink(str(root), flush_rows=10**6, flush_seconds=60, max_buffer=10**6)
    for part, n in RETENTION_HOURS.items():
        day, hour = part.split("/")
        t = datetime.fromisoformat(day.removeprefix("date=")).replace(tzinfo=UTC, hour=int(hour[5:]))
        for i in range(n):
            ts = int((t + timedelta(minutes=i)).timestamp() * 1_000_000)
            sink.append(
                (
                    ts,
                    f"{part}-{i}",
                    "churn",
                    "champion",
                    "1",
                    f"u{i}",
                    True,
                    1.0,
                    200,
                    1,
                    0.5,
                    False,
                    None,
                    None,
                )
            )
    sink.close()


def partitions(root: Path) -> dict[str, int]:
    """Records per ``date=/hour=`` partition under ``root``."""
    out: dict[str, int] = {}
    for r in rows_of(root):
        k = f"date={r['ts']:%Y-%m-%d}/hour={r['ts']:%H}"
        out[k] = out.get(k, 0) + 1
    return out
