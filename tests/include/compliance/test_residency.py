"""Residency on the DAG side (issue 17): residency tags, another region's events refused, roots per region."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from support_privacy import T0, write_events

from include.compliance.errors import ResidencyViolation
from include.compliance.residency import check_events_region
from include.registry.audit import read_records
from include.registry.errors import ResidencyRefused
from include.registry.resolve import check_residency
from modelgate_contracts.residency import allowed_regions, residency_allows


@pytest.mark.parametrize(
    ("tag", "region", "allowed"),
    [
        ("eu-west-1", "me-central-1", False),
        ("eu-west-1", "eu-west-1", True),
        ("eu-west-1, me-central-1", "me-central-1", True),
        (None, "me-central-1", True),  # no residency: no constraint
        ("eu-west-1", None, True),  # no region: not enforced
    ],
)
def test_a_residency_tag_allows_its_regions_only(tag, region, allowed) -> None:
    assert residency_allows(tag, region) is allowed


def test_allowed_regions_parses_lists() -> None:
    assert allowed_regions(" a-1 ,b-2,") == {"a-1", "b-2"} and allowed_regions("") is None


def test_a_refused_version_is_audited_with_the_region(monkeypatch) -> None:
    monkeypatch.setenv("MODELGATE_REGION", "me-central-1")
    check_residency("models:/m/1", "1", "me-central-1")  # allowed: nothing happens
    with pytest.raises(
        ResidencyRefused, match=r"modelgate\.residency=eu-west-1, which does not allow region me-central-1"
    ):
        check_residency("models:/m/2", "2", "eu-west-1")
    rec = read_records()[-1]
    assert (
        rec.action == "residency.refused"
        and rec.subject == "models:/m/2"
        and rec.actor == "region:me-central-1"
    )


def test_dag_readers_refuse_events_of_another_region(tmp_path: Path, monkeypatch) -> None:
    from include.abtest.experiment import parse_experiment
    from include.abtest.reduce import reduce_window
    from include.canary.events import load_window
    from include.drift.live import read_window

    root = tmp_path / "events"
    write_events(root)
    (root / "_region").write_text("eu-west-1\n")  # what a router in eu-west-1 writes
    monkeypatch.setenv("MODELGATE_REGION", "me-central-1")
    with pytest.raises(ResidencyViolation, match="belong to region 'eu-west-1'"):
        check_events_region(str(root))
    with pytest.raises(ResidencyViolation):
        load_window(str(root), "churn", T0, T0 + timedelta(hours=1))
    with pytest.raises(ResidencyViolation):
        read_window(root, "churn", None, T0, T0 + timedelta(hours=1))
    exp = parse_experiment(
        {"id": "e", "model": "churn", "variants": [{"name": "champion", "weight": 1}, {"name": "canary", "weight": 1}],
         "start": T0.isoformat(), "max_duration_days": 14, "mde": 0.05, "min_sample": 10,
         "primary": {"name": "score", "type": "mean", "source": "events", "column": "score"}}
    )  # fmt: skip
    with pytest.raises(ResidencyViolation):
        reduce_window(exp, root, tmp_path, datetime(2026, 12, 1, tzinfo=UTC))
    monkeypatch.setenv("MODELGATE_REGION", "eu-west-1")  # the region's own workers read it
    assert load_window(str(root), "churn", T0, T0 + timedelta(hours=1)).num_rows == 100


def test_the_events_root_is_configured_per_region(monkeypatch, tmp_path: Path) -> None:
    from include.config import Settings

    monkeypatch.delenv("MODELGATE_EVENTS_ROOT", raising=False)
    monkeypatch.delenv("ROUTER_EVENTS_ROOT", raising=False)
    monkeypatch.setenv(
        "MODELGATE_EVENTS_ROOTS", '{"me-central-1": "/data/me/events", "eu-west-1": "s3://eu/events"}'
    )
    monkeypatch.setenv("MODELGATE_REGION", "me-central-1")
    assert Settings().resolved_events_root() == "/data/me/events"
    monkeypatch.setenv("MODELGATE_REGION", "eu-west-1")
    assert Settings().resolved_events_root() == "s3://eu/events"
    monkeypatch.setenv("MODELGATE_EVENTS_ROOT", str(tmp_path))  # an explicit root wins
    assert Settings().resolved_events_root() == str(tmp_path)
