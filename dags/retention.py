"""Daily retention of prediction events per region; see DOC below."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import Param, dag, get_current_context, task

DOC = """
### retention

Daily at 02:30 UTC, drops the router's event partitions (`date=.../hour=...`) older than the
retention of this worker's region (`include/compliance/retention.py`, `docs/privacy.md`):
`MODELGATE_RETENTION_DAYS` (JSON per region, e.g. `{"me-central-1": 30}`), else
`MODELGATE_RETENTION_DEFAULT_DAYS` (90); the region is `MODELGATE_REGION`.

1. **drop_expired** : each expired partition is renamed to a hidden folder (atomic for readers) and
   deleted; a partition a killed run left half deleted is finished first. Appends one
   `retention.drop` audit record (region, retention, cutoff, partitions and files dropped) and
   returns the same report.

Conf (all optional): `events_root` (default the settings'), `now` (ISO time the retention counts back
from, default now), `dry_run` (list only: nothing dropped, nothing audited).
"""


@dag(
    dag_id="retention",
    schedule="30 2 * * *",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=timedelta(hours=1),
    tags=["modelgate", "privacy"],
    doc_md=DOC,
    default_args={"owner": "modelgate", "retries": 1, "retry_delay": timedelta(minutes=1)},
    params={
        "events_root": Param(None, type=["null", "string"], description="Root of the router's event files"),
        "now": Param(None, type=["null", "string"], description="Reference time, ISO (default now)"),
        "dry_run": Param(False, type="boolean", description="List what would be dropped; drop nothing"),
    },
)
def retention() -> None:
    @task
    def drop_expired() -> dict[str, Any]:
        from include.compliance import steps
        from plugins.task_utils import actor_of, call

        ctx = get_current_context()
        conf = dict(ctx["dag_run"].conf or {})
        return dict(call(steps.drop_expired, conf, actor_of(dict(ctx)), ctx["run_id"]).to_xcom())

    drop_expired()


retention()
