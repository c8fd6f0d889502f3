"""Helpers of the A/B analysis tests: experiments as dicts, events written in the router's layout."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from include.abtest.experiment import parse_experiment
from modelgate_dev.abtest.generate import event_schema

START = datetime(2026, 12, 1, tzinfo=UTC)


def experiment_doc(**over: Any) -> dict[str, Any]:
    """A valid experiment document; keyword arguments replace top-level fields."""
    doc: dict[str, Any] = {
        "id": "exp-1",
        "model": "churn",
        "variants": [{"name": "a", "weight": 1, "model_version": "1"}, {"name": "b", "weight": 1, "model_version": "2"}],
        "start": START.isoformat(),
        "max_duration_days": 14,
        "mde": 0.05,
        "min_sample": 100,
        "primary": {"name": "conversion", "type": "proportion", "column": "converted"},
        "secondary": [{"name": "revenue", "type": "mean", "column": "revenue"}],
        "guardrails": [
            {"name": "latency", "type": "ratio", "source": "events", "numerator": "latency_ms",
             "denominator": "requests", "direction": "decrease"},
        ],
        "outcomes": {"path": "outcomes.parquet"},
    }  # fmt: skip
    doc.update(over)
    return doc


def experiment(**over: Any) -> Any:
    return parse_experiment(experiment_doc(**over))


def write_events(root: Path, rows: list[dict[str, Any]], name: str = "part-0.parquet") -> None:
    """Write event rows (missing fields get defaults) into ``date=/hour=`` partitions."""
    defaults = {"model": "churn", "model_version": "1", "consent": True, "latency_ms": 1.0, "status": 200,
                "rows": 1, "score": 0.5, "shadow": False, "error": None}  # fmt: skip
    full = []
    for i, r in enumerate(rows):
        rec = {**defaults, "request_id": f"r{i}-{name}", **r}
        full.append(rec)
    by_hour: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for rec in full:
        ts: datetime = rec["ts"]
        by_hour.setdefault((f"{ts:%Y-%m-%d}", f"{ts:%H}"), []).append(rec)
    sch = event_schema()
    for (d, h), recs in by_hour.items():
        table = pa.Table.from_pylist(recs, schema=sch)
        path = root / f"date={d}" / f"hour={h}" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, path)
