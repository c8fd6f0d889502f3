"""The typed step records of the A/B, drift, batch and compliance DAGs: XCom round trips, clear errors."""

from __future__ import annotations

import json
from typing import Any

import pytest

from include.abtest import steps as ab
from include.batch import steps as bt
from include.compliance import steps as cp
from include.drift import steps as dr
from include.errors import ModelgateError
from include.xcom import InvalidXcom, XcomRecord

SUMMARY = ab.Summary(
    "ship-exp",
    "ship",
    "treatment wins on conversion",
    "treatment",
    "2",
    "r1",
    "http://m/#/r1",
    "http://m/get-artifact?path=report.html&run_uuid=r1",
    {"subject": "A/B ship-exp: ship treatment?", "body": "…"},
    "7",
)
PROMOTED = ab.Promoted("churn", "treatment", "2", "champion", True, "1", False, "alice")
ERASURE = cp.Erasure(
    "hmac:ab12",
    "PDPL #12",
    "dpo",
    30,
    9,
    2,
    1,
    0,
    [{"kind": "events", "root": "events", "column": "unit_id", "rows_removed": 30, "files": 3}],
    ["events:model=churn/date=2026-01-01"],
    0.41,
    17,
    1800.0,
    True,
)
PUBLISHED = bt.Published(
    "2026-01-01",
    "s3://scores/2026-01-01",
    "models:/churn/3",
    ["in/p0.parquet", "in/p1.parquet"],
    2000,
    [{"partition": "in/p2.parquet", "reason": "score outside [0, 1]"}],
)
RECORDS: list[XcomRecord] = [
    SUMMARY,
    ab.Summary("old-exp", "concluded", "experiment concluded", "treatment", "2", None, None, None, None),
    ab.Approval("approved", "alice", "looks good"),
    ab.Approval("timed out", None, None),
    PROMOTED,
    ab.Recorded("ship-exp", "approved", "alice", "looks good", PROMOTED),
    ab.Recorded("ship-exp", "rejected", "bob", "too early", None),
    dr.Checked("churn", "3", "drift", ["x2"], [], "0f3a"),
    dr.Checked("iris", None, "no_champion", []),
    dr.Window("events", "2026-01-02T00:00:00+00:00", 24.0, 0.01),
    bt.Job("in/p0.parquet", "2026-01-01", "models:/churn/3", "s3://scores/2026-01-01", "s3://scores/q"),
    bt.Scored("in/p0.parquet", "scored", 1000, 52000),
    PUBLISHED,
    ERASURE,
    cp.Retention(
        "eu-west-1",
        30,
        "2025-12-02T00:00:00+00:00",
        "events",
        ["model=churn/date=2025-11-30"],
        4,
        0,
        False,
        18,
    ),
    cp.Retention("eu-west-1", 30, "2025-12-02T00:00:00+00:00", "events", [], 0, 0, True, None),
]


@pytest.mark.parametrize(
    "record", RECORDS, ids=lambda r: f"{type(r).__module__.split('.')[1]}.{type(r).__name__}"
)
def test_every_domain_record_survives_the_xcom_round_trip_as_plain_json(record: XcomRecord) -> None:
    data = record.to_xcom()
    assert json.loads(json.dumps(data)) == data, "the XCom form is plain JSON"
    assert type(record).from_xcom(json.loads(json.dumps(data))) == record


def test_the_xcom_forms_keep_the_keys_templates_links_and_asset_events_read() -> None:
    # ship_gate.approve renders ship_candidates[i]['form']['subject'|'body']; the link reads run_url
    assert SUMMARY.to_xcom()["form"]["subject"] == "A/B ship-exp: ship treatment?"
    assert ab.ship_candidates(ab.summaries_of([SUMMARY.to_xcom(), None, RECORDS[1].to_xcom()])) == [SUMMARY]
    assert ab.Recorded.from_xcom(RECORDS[5].to_xcom()).promoted == PROMOTED
    assert PUBLISHED.asset_uri() == "s3://scores/2026-01-01"
    assert bt.Published("d", "/data/scores", "m", [], 0, []).asset_uri() == "file:///data/scores"
    assert PUBLISHED.asset_extra() == {
        "date": "2026-01-01",
        "model_uri": "models:/churn/3",
        "rows": 2000,
        "partitions": 2,
    }
    assert PUBLISHED.quarantine_summary() == "1 partition(s) quarantined: in/p2.parquet: score outside [0, 1]"
    assert bt.Published("d", "o", "m", ["p"], 1, []).quarantine_summary() is None
    job = RECORDS[10].to_xcom()
    assert set(job) == {
        "partition",
        "date",
        "model_uri",
        "output_dir",
        "quarantine_dir",
    }  # partition_jobs' keys


def test_approval_reads_the_approval_operator_answer() -> None:
    approved = ab.approval(
        {
            "chosen_options": ["Approve"],
            "params_input": {"reason": "ok"},
            "responded_by_user": {"name": "alice"},
        }
    )
    assert approved.approved and approved.by == "alice"
    assert not ab.approval(None).approved and ab.approval(None).outcome == "no answer"


def test_the_drift_window_is_resolved_once_from_the_conf_with_clear_errors() -> None:
    w = dr.window({"events_root": "ev", "end": "2026-01-02T00:00:00+00:00", "window_hours": 6, "alpha": 0.05})
    assert w == dr.Window("ev", "2026-01-02T00:00:00+00:00", 6.0, 0.05)
    assert w.end_time() is not None and w.end_time().isoformat() == "2026-01-02T00:00:00+00:00"  # type: ignore[union-attr]
    assert dr.window({"events_root": "ev"}) == dr.Window("ev", None, 24.0, 0.01)
    for conf, message in [
        ({"end": "yesterday"}, "conf end 'yesterday' is not an ISO time"),
        ({"window_hours": "a day"}, "conf window_hours and alpha must be numbers"),
        ({"alpha": 1.5}, "alpha in (0, 1)"),
    ]:
        with pytest.raises(ModelgateError) as e:
            dr.window({"events_root": "ev", **conf})
        assert message in str(e.value)


def test_retention_refuses_a_conf_time_that_is_not_iso_before_touching_a_file() -> None:
    from include.compliance.errors import ComplianceError

    with pytest.raises(ComplianceError, match="conf now 'last week' is not an ISO time"):
        cp.drop_expired({"now": "last week", "events_root": "does-not-matter"}, "alice", "r1")


def _without(d: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in d.items() if k != key}


BAD: list[tuple[type[XcomRecord], Any, str]] = [
    (ab.Summary, _without(SUMMARY.to_xcom(), "winner"), "Summary.winner: missing"),
    (ab.Summary, {**SUMMARY.to_xcom(), "form": {"subject": 1}}, "Summary.form"),
    (ab.Approval, {"outcome": "approved", "by": "alice"}, "Approval.reason: missing"),
    (
        ab.Promoted,
        {**PROMOTED.to_xcom(), "alias_moved": "yes"},
        "Promoted.alias_moved: expected bool, got str",
    ),
    (ab.Recorded, {**RECORDS[5].to_xcom(), "promoted": {"model": "churn"}}, "Recorded.promoted"),
    (dr.Checked, {**RECORDS[7].to_xcom(), "drifted": "x2"}, "Checked.drifted: expected a list, got str"),
    (dr.Checked, ["churn", "drift"], "Checked: expected a dict, got list"),
    (dr.Window, {**RECORDS[9].to_xcom(), "alpha": "0.01"}, "Window.alpha: expected float, got str"),
    (bt.Job, _without(RECORDS[10].to_xcom(), "output_dir"), "Job.output_dir: missing"),
    (bt.Job, {**RECORDS[10].to_xcom(), "local_path": "/tmp/p0"}, "Job: unknown field(s) ['local_path']"),
    (bt.Scored, {**RECORDS[11].to_xcom(), "rows": 1.5}, "Scored.rows: expected int, got float"),
    (
        bt.Published,
        {**PUBLISHED.to_xcom(), "published": ["a", 2]},
        "Published.published[1]: expected str, got int",
    ),
    (cp.Erasure, _without(ERASURE.to_xcom(), "subject"), "Erasure.subject: missing"),
    (cp.Erasure, {**ERASURE.to_xcom(), "within_sla": 1}, "Erasure.within_sla: expected bool, got int"),
    (
        cp.Retention,
        {**RECORDS[-1].to_xcom(), "retention_days": "30"},
        "Retention.retention_days: expected int",
    ),
]


@pytest.mark.parametrize(
    ("cls", "data", "message"), BAD, ids=[b[2].split(":")[0] + str(i) for i, b in enumerate(BAD)]
)
def test_a_malformed_domain_xcom_dict_is_refused_naming_the_record_and_field(
    cls: type[XcomRecord], data: Any, message: str
) -> None:
    with pytest.raises(InvalidXcom) as e:
        cls.from_xcom(data)
    assert message in str(e.value)
    assert isinstance(e.value, ModelgateError) and e.value.code == "invalid_xcom"
