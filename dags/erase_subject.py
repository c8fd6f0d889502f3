"""Erase one data subject's records from events and derived tables; see DOC below."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import Param, dag, get_current_context, task

SLA = timedelta(minutes=30)
"""The run must finish within this (``dagrun_timeout``); the erase task itself within ``SLA - 5 min``."""

DOC = """
### erase_subject

Erases one data subject (a unit id as the router records `X-Unit-Id`) on request, e.g. under the
UAE PDPL (`include/compliance/erasure.py`, `docs/privacy.md`). Trigger it from the UI (Trigger DAG
with conf) or `modelgate trigger erase_subject --conf '{"unit_id": "...", "reason": "...",
"requested_by": "..."}'`.

1. **erase** : removes the unit's records from every event partition under the events root (their
   sampled `inputs` go with them) and from the derived tables in `MODELGATE_ERASURE_ROOTS`; each file
   that holds the unit is rewritten atomically (temporary file, fsync, rename), so a killed run leaves
   every file old or new and a re-run completes it; a re-run after success changes nothing. Appends
   an `erase_subject` audit record with the counts and an HMAC of the unit id (key in the secrets
   folder), never the id itself. Returns the report (rows, files, partitions, seconds).
2. **verify** : counts the unit's records left in every target; fails unless it is 0.

SLA: the run times out after 30 minutes (`dagrun_timeout`), the erase task after 25; the report
says whether it finished within the SLA. Conf: `unit_id`, `reason`, `requested_by` (all required);
`events_root` (optional, default the settings').
"""


@dag(
    dag_id="erase_subject",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=SLA,
    tags=["modelgate", "privacy"],
    doc_md=DOC,
    default_args={"owner": "modelgate", "retries": 1, "retry_delay": timedelta(seconds=10)},
    params={
        "unit_id": Param("", type="string", description="The data subject's unit id (X-Unit-Id)"),
        "reason": Param("", type="string", description="Why, e.g. the request's reference"),
        "requested_by": Param("", type="string", description="Who asked for the erasure"),
        "events_root": Param(None, type=["null", "string"], description="Root of the router's event files"),
    },
)
def erase_subject() -> None:
    @task(execution_timeout=SLA - timedelta(minutes=5))
    def erase() -> dict[str, Any]:
        from include.compliance import steps
        from plugins.task_utils import actor_of, call

        ctx = get_current_context()
        conf = dict(ctx["dag_run"].conf or {})
        return dict(
            call(steps.erase, conf, actor_of(dict(ctx)), ctx["run_id"], SLA.total_seconds()).to_xcom()
        )

    @task
    def verify(report: dict[str, Any]) -> dict[str, Any]:
        from include.compliance import steps
        from plugins.task_utils import call

        conf = dict(get_current_context()["dag_run"].conf or {})
        return dict(call(steps.verify, call(steps.Erasure.from_xcom, report), conf).to_xcom())

    verify(erase())


erase_subject()
