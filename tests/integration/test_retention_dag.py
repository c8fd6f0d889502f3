"""retention with dag.test(): expired partitions of the worker's region are dropped and audited."""

from __future__ import annotations

from pathlib import Path

import pytest
from support_airflow import run_dag, task_states
from support_privacy import NOW, partitions, write_hours

from include.registry.audit import read_records

pytestmark = pytest.mark.integration


def test_retention_dag_drops_expired_partitions(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("MODELGATE_REGION", "me-central-1")
    monkeypatch.setenv("MODELGATE_RETENTION_DAYS", '{"me-central-1": 30}')
    write_hours(tmp_path / "events")
    dr = run_dag(
        "retention.py", "retention", {"events_root": str(tmp_path / "events"), "now": NOW.isoformat()}
    )
    assert str(dr.state) == "success", task_states(dr)
    assert partitions(tmp_path / "events") == {"date=2026-11-01/hour=12": 3, "date=2026-11-30/hour=09": 4}
    rec = next(r for r in reversed(read_records()) if r.action == "retention.drop")
    assert rec.run_id == dr.run_id and rec.after["dropped"] == ["date=2026-08-23", "date=2026-11-01/hour=10"]
