"""Canary rollout of a model version with a statistical judge, rollback and human approval (see DOC)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pendulum
from airflow.providers.standard.operators.hitl import HITLOperator
from airflow.providers.standard.sensors.date_time import DateTimeSensorAsync
from airflow.sdk import Asset, Param, dag, get_current_context, task

REGRESSION_PASSED = Asset(name="modelgate_regression_passed", uri="modelgate://registry/regression_passed")
STAGE_SLOTS = 6  # = include.canary.policy.MAX_STAGES (checked by a test); unused slots skip
APPROVAL_TIMEOUT = timedelta(hours=24)  # an unanswered approval resolves to its default, Reject
OPTIONS = ["Approve", "Reject"]

DOC = """
### canary_promotion

Moves live traffic to a model version in stages and promotes it to `champion` only when a
statistical judge (include/canary/judge.py, after Kayenta) finds it no worse than the champion.
Scheduled on `modelgate_regression_passed` (extra: model_name, version); trigger it by hand with conf
`{"model_name": "churn", "version": "2"}` (optional `policy`: a policy name from `policies/`, e.g.
`canary_demo`, never a path). The actor of every change is the authenticated user who triggered the
run (`airflow:canary_promotion` for an Asset-triggered run); a conf `actor` is refused.

1. **prepare** : load the policy (`policies/canary_<model>.yaml` or `canary_default.yaml`), take the
   model's canary lock (a canary of another version is refused), tag `modelgate.canary.verdict=in_progress`.
2. **approval_gate / approve_start** : when the policy sets `require_approval`, a human approves
   (Airflow HITL, UI or REST API) with the regression evidence before any traffic moves.
3. **route_i / bake_i / judge_i / approval_i**, one slot per stage (default 1, 5, 25, 50, 100 %):
   routes through `RouterHook`, a deferrable wait (`DateTimeSensorAsync`, no worker slot held), then
   the judge on the router's events of the window. Pass: next stage. Marginal: a human approves or
   rejects with the evidence. Fail, critical metric or router guard trip: **rollback at once**
   (routes back to the champion, `modelgate.canary.verdict=rolled_back` with the reason, audit record,
   the policy's `on_rollback` callback). Slots beyond the policy's stages skip.
   Each stage's routes go to the control-plane store and its bake starts only once every router
   replica serves that generation (`converge_seconds`); a replica that does not rolls back.
4. **finish** : after the last stage, the promotion saga: routes 100 % in the store, every replica
   serving them, then alias `champion` moves to the version and the old champion becomes
   `previous_champion` (`python -m include.canary.rollback --model M` brings it back), then the
   verdict and its audit record. A crash between any two steps is completed by a re-run, once.
5. **reconcile** : the `champion` alias is made to match the routes store (the truth); a disagreement
   no rule settles fails this task with a message (skipped while the canary is still in progress).
6. **finalize** : always runs; a failed task rolls an in-progress canary back; the run fails when the
   canary was rolled back.

Every task is idempotent and a re-run resumes from the registry's stage tags (docs/canary.md).
"""


def _ctx(actor: str | None = None) -> Any:
    from include.canary.steps import Ctx
    from plugins.mlflow_hook import ModelgateMlflowHook
    from plugins.router_hook import RouterHook
    from plugins.task_utils import actor_of

    uri = ModelgateMlflowHook().get_conn()
    context = get_current_context()
    who = actor or actor_of(dict(context))
    return Ctx(RouterHook(actor=who), who, context["run_id"], uri)


def _pull(task_id: str) -> Any:
    return get_current_context()["ti"].xcom_pull(task_ids=task_id)


def _plan() -> Any:
    from include.canary import steps
    from plugins.task_utils import call

    return call(steps.Plan.from_xcom, _pull("prepare"))


@dag(
    dag_id="canary_promotion",
    schedule=[REGRESSION_PASSED],
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["modelgate", "canary"],
    doc_md=DOC,
    default_args={"owner": "modelgate", "retries": 2, "retry_delay": timedelta(seconds=10)},
    params={
        "model_name": Param(
            None, type=["null", "string"], description="Model name (default: from the Asset)"
        ),
        "version": Param(
            None, type=["null", "string"], description="Candidate version (default: from the Asset)"
        ),
        "policy": Param(
            None, type=["null", "string"], description="Canary policy name in policies/ (default: by model)"
        ),
    },
)
def canary_promotion() -> None:  # noqa: C901 - one nested function per task kind
    @task
    def prepare() -> dict[str, Any]:
        from include.canary import steps
        from plugins.task_utils import call

        context = get_current_context()
        events = list((context.get("triggering_asset_events") or {}).get(REGRESSION_PASSED, []))
        extras = [dict(e.extra or {}) for e in events]
        return call(steps.prepare, dict(context["dag_run"].conf or {}), extras, _ctx()).to_xcom()

    @task.branch
    def approval_gate(plan: dict[str, Any]) -> str | None:
        from include.canary import steps
        from plugins.task_utils import call

        return "approve_start" if steps.needs_approval(call(steps.Plan.from_xcom, plan)) else None

    approve_start = HITLOperator(
        task_id="approve_start",
        subject="Start the canary of {{ ti.xcom_pull(task_ids='prepare')['model'] }} "
        "v{{ ti.xcom_pull(task_ids='prepare')['version'] }}?",
        body="{{ ti.xcom_pull(task_ids='prepare')['evidence_md'] }}",
        options=OPTIONS,
        defaults=["Reject"],
        response_timeout=APPROVAL_TIMEOUT,
    )

    @task(trigger_rule="none_failed")
    def route(stage: int) -> dict[str, Any] | None:
        from airflow.sdk.exceptions import AirflowSkipException

        from include.canary import steps
        from plugins.task_utils import call

        plan = _plan()
        start = _pull("approve_start") if stage == 1 else None
        prev = _pull(f"approval_{stage - 1}") if stage > 1 else None
        routed = call(steps.route, plan, stage, _ctx(plan.actor), start, prev)
        if routed is None:
            raise AirflowSkipException(f"stage {stage}: nothing to do (see the canary tags of the version)")
        return dict(routed.to_xcom())

    @task.branch
    def judge(stage: int) -> str | None:
        from include.canary import steps
        from plugins.task_utils import call

        plan = _plan()
        routed = call(steps.Routed.from_xcom, _pull(f"route_{stage}"))
        judged = call(steps.judge, plan, routed, _ctx(plan.actor))
        get_current_context()["ti"].xcom_push(key="judge", value=judged.to_xcom())
        return f"approval_{stage}" if judged.marginal else None

    @task(trigger_rule="none_failed")
    def finish() -> dict[str, Any]:
        from include.canary import steps
        from plugins.task_utils import call

        plan = _plan()
        last = _pull(f"approval_{len(plan.weights_bp)}")
        return dict(call(steps.finish, plan, _ctx(plan.actor), last).to_xcom())

    @task(trigger_rule="all_done")
    def reconcile() -> list[dict[str, Any]]:
        from airflow.sdk.exceptions import AirflowSkipException

        from include.canary import steps
        from plugins.task_utils import call

        plan = call(steps.plan_or_none, _pull("prepare"))
        if plan is None:
            raise AirflowSkipException("the canary did not start: nothing to reconcile")
        # the context first: the MLflow server, and the identity the registry reads below need (401 without)
        ctx = _ctx(plan.actor)
        if steps.unsettled(plan, ctx):
            raise AirflowSkipException("the canary did not end: finalize rolls it back, nothing to reconcile")
        return [r.to_xcom() for r in call(steps.reconcile, plan, ctx)]

    @task(trigger_rule="all_done")
    def finalize() -> dict[str, Any] | None:
        from airflow.sdk.exceptions import AirflowFailException

        from include.canary import steps
        from plugins.task_utils import call

        context = get_current_context()
        states = context["ti"].get_task_states(dag_id=context["dag"].dag_id, run_ids=[context["run_id"]])
        flat = states.get(context["run_id"], states) if isinstance(states, dict) else {}
        failed = [t for t, s in flat.items() if str(s) in ("failed", "upstream_failed") and t != "finalize"]
        plan = steps.plan_or_none(_pull("prepare"))
        if failed:
            steps.fail_safe(plan, failed, _ctx(plan.actor if plan else None))
            raise AirflowFailException(
                f"canary run failed in {sorted(failed)}; any canary traffic was rolled back"
            )
        raw = _pull("finish")
        outcome = call(steps.Outcome.from_xcom, raw) if raw else None
        message = steps.failure(outcome)
        if message:
            raise AirflowFailException(message)
        return outcome.to_xcom() if outcome else None

    plan = prepare()
    previous: Any = approval_gate(plan) >> approve_start
    for i in range(1, STAGE_SLOTS + 1):
        routed = route.override(task_id=f"route_{i}")(i)
        bake = DateTimeSensorAsync(
            task_id=f"bake_{i}",
            target_time=f"{{{{ ti.xcom_pull(task_ids='route_{i}')['judge_at'] }}}}",
            poke_interval=5,
        )
        judged = judge.override(task_id=f"judge_{i}")(i)
        approval = HITLOperator(
            task_id=f"approval_{i}",
            subject=f"Canary stage {i} is marginal: continue?",
            body=f"{{{{ ti.xcom_pull(task_ids='judge_{i}', key='judge')['evidence_md'] }}}}",
            options=OPTIONS,
            defaults=["Reject"],
            response_timeout=APPROVAL_TIMEOUT,
        )
        previous >> routed >> bake >> judged >> approval
        routed >> [judged, approval]  # a skipped route skips its whole slot in one scheduling pass
        previous = approval
    previous >> finish() >> reconcile() >> finalize()


canary_promotion()
