"""erase_subject with dag.test(): a subject's records leave three hourly partitions, the report and the
audit record say so, a malformed conf fails the run with its problem named."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from support_airflow import run_dag, task_states
from support_privacy import SUBJECT, write_events

from include.registry.audit import read_records

pytestmark = pytest.mark.integration

DAG_FILE, DAG_ID = "erase_subject.py", "erase_subject"


def _rows(root: Path) -> list[dict]:
    return [r for f in sorted(root.rglob("*.parquet")) for r in pq.read_table(f).to_pylist()]


def _xcom(dag_run, task_id: str):
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as s:
        row = (
            s.query(XComModel)
            .filter(
                XComModel.run_id == dag_run.run_id,
                XComModel.task_id == task_id,
                XComModel.key == "return_value",
            )
            .one()
        )
        return json.loads(row.value) if isinstance(row.value, str) else row.value


def test_erase_subject_dag_removes_the_subject_and_reports_it(tmp_path: Path) -> None:
    events = tmp_path / "events"
    write_events(events)
    before = _rows(events)
    conf = {
        "unit_id": SUBJECT,
        "reason": "PDPL request #9",
        "requested_by": "dpo@example",
        "events_root": str(events),
    }
    dr = run_dag(DAG_FILE, DAG_ID, conf)
    assert str(dr.state) == "success", task_states(dr)
    after = _rows(events)
    assert len(after) == len(before) - 30 and all(r["unit_id"] != SUBJECT for r in after)
    report = _xcom(dr, "verify")
    assert report["rows_removed"] == 30 and report["remaining"] == 0 and report["within_sla"] is True
    assert len([p for p in report["partitions"] if p.startswith("events:")]) == 3
    assert SUBJECT not in json.dumps(report)
    rec = next(r for r in reversed(read_records()) if r.action == "erase_subject")
    assert (
        rec.run_id == dr.run_id and rec.after["rows_removed"] == 30 and rec.actor == "dag_test"
    )  # dag.test()'s triggering user


def test_erase_subject_dag_fails_on_a_conf_without_unit_id(tmp_path: Path) -> None:
    dr = run_dag(DAG_FILE, DAG_ID, {"reason": "r", "requested_by": "me", "events_root": str(tmp_path)})
    assert str(dr.state) == "failed"
    assert task_states(dr)["erase"] == "failed"
