"""Every few minutes: the ``champion`` alias of each routed model is made to match the routes store (see DOC)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import Param, dag, get_current_context, task

DOC = """
### registry_reconcile

Keeps MLflow's `champion` alias a faithful mirror of what is served. The routes store (the
control plane's desired routes, written only by the gates, audited in the same transaction) is
the truth: a hand-moved alias never changes what is served, and this DAG moves it back.

Every 5 minutes, for every model in the store (or only conf `models`):

- **agree**: the alias names the version the store's champion variant serves: nothing to do;
- **repaired**: the alias moved back to the served version (audit records `set_alias` and
  `champion.reconcile`, with the store generation it followed);
- **unmanaged**: the champion serves a local file or the model is not registered: skipped;
- **undecidable**: the champion variant is missing, serves through an alias, or gets no traffic
  while no canary holds the model: the task **fails with a message naming each model**, the alert
  (every decidable model is repaired first).

The gates (`canary_promotion`, `ab_analysis`) run the same step after their promotions
(`include/canary/reconcile.py`, docs/canary.md).
"""


@dag(
    dag_id="registry_reconcile",
    schedule=timedelta(minutes=5),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["modelgate", "registry"],
    doc_md=DOC,
    default_args={"owner": "modelgate", "retries": 1, "retry_delay": timedelta(seconds=30)},
    params={
        "models": Param(None, type=["null", "array"], description="Only these models (default: all routed)")
    },
)
def registry_reconcile() -> None:
    @task
    def reconcile() -> list[dict[str, Any]]:
        from include.canary import steps
        from plugins.mlflow_hook import ModelgateMlflowHook
        from plugins.router_hook import RouterHook
        from plugins.task_utils import actor_of, call

        uri = ModelgateMlflowHook().get_conn()
        context = get_current_context()
        models = (context["dag_run"].conf or {}).get("models")
        actor = actor_of(dict(context))
        ctx = steps.Ctx(RouterHook(actor=actor), actor, context["run_id"], uri)
        return [r.to_xcom() for r in call(steps.reconcile_models, ctx, models)]

    reconcile()


registry_reconcile()
