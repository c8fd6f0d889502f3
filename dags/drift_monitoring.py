"""Daily (and on new router events) drift check of every champion model; see DOC below."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import (
    Asset,
    AssetOrTimeSchedule,
    CronTriggerTimetable,
    Param,
    dag,
    get_current_context,
    task,
)

ROUTER_EVENTS = Asset(name="modelgate_router_events", uri="modelgate://router/events")
"""Emitted when new event partitions land (e.g. ``POST /api/v2/assets/events`` from the events job)."""
DRIFT_CHECKED = Asset(name="modelgate_drift_checked", uri="modelgate://monitoring/drift")

DOC = """
### drift_monitoring

Daily at 03:00 UTC **and** whenever the `modelgate_router_events` Asset gets an event (new event
partitions), compares each champion model's live inputs and scores with their references
(`include/drift`, `docs/drift.md`).

1. **list_models** : conf `models`, else every registered model with a `champion` alias.
2. **check** (one mapped task per model) : reads the window's router events (sampled `inputs` and
   scores), compares the inputs with a sample of the version's registered feature spec and the scores
   with the previous window; PSI, KS and Jensen-Shannon per feature with p-values from their null at
   the actual sample sizes, Benjamini-Hochberg across features at `alpha`. Logs `results.json` and
   `report.html` (per-feature plots) to MLflow (experiment `modelgate-drift`), sets the version's
   `modelgate.drift.*` tags (verdict, drifted features, run id, window) and, on confirmed drift, calls
   the alert callback `MODELGATE_DRIFT_ALERT` (`package.module:function`; default logs a warning).
3. **publish** : emits the `modelgate_drift_checked` Asset event with every verdict in its extra.

Conf (all optional): `models`, `events_root`, `end` (ISO time, default now), `window_hours` (24),
`alpha` (0.01).
"""


@dag(
    dag_id="drift_monitoring",
    schedule=AssetOrTimeSchedule(
        timetable=CronTriggerTimetable("0 3 * * *", timezone="UTC"), assets=[ROUTER_EVENTS]
    ),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["modelgate", "monitoring"],
    doc_md=DOC,
    default_args={"owner": "modelgate", "retries": 1, "retry_delay": timedelta(seconds=30)},
    params={
        "models": Param(None, type=["null", "array"], description="Only these models"),
        "events_root": Param(None, type=["null", "string"], description="Root of the router's event files"),
        "end": Param(None, type=["null", "string"], description="End of the window, ISO time (default now)"),
        "window_hours": Param(24, type="number", description="Window length in hours"),
        "alpha": Param(0.01, type="number", description="False-alarm level across features"),
    },
)
def drift_monitoring() -> None:
    @task
    def list_models() -> list[str]:
        from include.drift import steps
        from plugins.mlflow_hook import ModelgateMlflowHook
        from plugins.task_utils import call

        conf = dict(get_current_context()["dag_run"].conf or {})
        uri = ModelgateMlflowHook().get_conn() if not conf.get("models") else None
        return list(call(steps.list_models, conf, uri))

    @task
    def check(model: str) -> dict[str, Any]:
        from include.drift import steps
        from plugins.mlflow_hook import ModelgateMlflowHook
        from plugins.task_utils import actor_of, call

        ctx = get_current_context()
        window = call(steps.window, dict(ctx["dag_run"].conf or {}))
        uri = ModelgateMlflowHook().get_conn()
        return dict(call(steps.check, model, window, uri, actor_of(dict(ctx)), ctx["run_id"]).to_xcom())

    @task(outlets=[DRIFT_CHECKED])
    def publish(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
        from include.drift import steps
        from plugins.task_utils import call

        verdicts = [c.to_xcom() for c in call(steps.verdicts, list(results))]
        get_current_context()["outlet_events"][DRIFT_CHECKED].extra = {"verdicts": verdicts}
        return verdicts

    publish(check.expand(model=list_models()))


drift_monitoring()
