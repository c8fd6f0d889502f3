"""Retention (issue 17): hour partitions older than the region's retention are dropped, audited."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest
from support_privacy import NOW, RETENTION_HOURS, partitions, write_hours

from include.compliance.retention import apply_retention, retention_for
from include.registry.audit import read_records


def test_retention_per_region_drops_only_expired_partitions_and_audits(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("MODELGATE_RETENTION_DAYS", '{"me-central-1": 30}')
    monkeypatch.setenv("MODELGATE_REGION", "me-central-1")
    assert retention_for() == ("me-central-1", 30) and retention_for("eu-west-1") == ("eu-west-1", 90)
    me, eu = tmp_path / "me", tmp_path / "eu"
    write_hours(me)
    write_hours(eu)
    (me / "date=2026-11-01" / ".hour=03.dropping").mkdir()  # left by a killed run

    dry = apply_retention(actor="t", events_root=str(me), now=NOW, dry_run=True)
    assert (
        dry["dropped"] == ["date=2026-08-23", "date=2026-11-01/hour=10"] and partitions(me) == RETENTION_HOURS
    )

    rep = apply_retention(actor="t", run_id="r1", events_root=str(me), now=NOW)
    assert rep["dropped"] == ["date=2026-08-23", "date=2026-11-01/hour=10"]
    assert rep["files"] == 2 and rep["interrupted_finished"] == 1 and rep["retention_days"] == 30
    assert partitions(me) == {"date=2026-11-01/hour=12": 3, "date=2026-11-30/hour=09": 4}
    assert not list(me.rglob(".*"))
    rec = next(r for r in reversed(read_records()) if r.action == "retention.drop")
    assert rec.id == rep["audit_id"] and rec.subject == "events:me-central-1" and rec.after["files"] == 2

    again = apply_retention(actor="t", events_root=str(me), now=NOW)
    assert again["dropped"] == [] and partitions(me) == {
        "date=2026-11-01/hour=12": 3,
        "date=2026-11-30/hour=09": 4,
    }

    eu_rep = apply_retention(actor="t", events_root=str(eu), region="eu-west-1", now=NOW)
    assert eu_rep["dropped"] == ["date=2026-08-23"] and eu_rep["retention_days"] == 90
    assert sum(partitions(eu).values()) == 7 + 3 + 4


def test_retention_refuses_a_naive_time_and_an_object_store_root(tmp_path: Path) -> None:
    from include.compliance.errors import ComplianceError

    with pytest.raises(ComplianceError, match="timezone-aware"):
        apply_retention(actor="t", events_root=str(tmp_path), now=datetime(2026, 1, 1))
    with pytest.raises(ComplianceError, match="local folders only"):
        apply_retention(actor="t", events_root="s3://bucket/events", now=NOW)
