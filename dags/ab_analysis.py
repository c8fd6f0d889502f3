"""Analyse every active A/B experiment each hour; a ship decision waits for a human (see doc_md below)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pendulum
from airflow.providers.standard.operators.hitl import ApprovalOperator
from airflow.providers.standard.operators.python import PythonOperator
from airflow.sdk import BaseOperatorLink, Param, dag, get_current_context, task, task_group

DOC = """
### ab_analysis

Hourly analysis of every **active** experiment in `experiments/*.yaml` (format: `docs/experiments.md`).

1. **list_experiments** : validates every experiment file; a bad file fails the run with its message.
2. **analyse** (one mapped task per experiment) : streams the router's events of the window
   (shadow records and units without consent excluded), joins the outcome records, reduces per unit
   then per variant to sufficient statistics, checks the split (SRM), compares every metric (CUPED,
   sequential intervals, Holm/BH), decides (`ship`, `keep running`, `stop: harm`, `invalid: SRM`,
   `stop: inconclusive`), and logs `results.json` and a self-contained `report.html` to MLflow
   (experiment `abtest/<id>`). The task's extra link **A/B report (MLflow)** opens the run.
3. **ship_gate** (mapped over the `ship` decisions only) :
   - **approve** : an `ApprovalOperator` whose form carries the evidence (effects, intervals,
     p-values, split, report link). Answer it in the UI (Required actions) or through the REST API
     `PATCH /api/v2/dags/ab_analysis/dagRuns/{run_id}/taskInstances/ship_gate.approve/{map_index}/hitlDetails`
     with `{"chosen_options": ["Approve"], "params_input": {"reason": "..."}}`. No answer within
     `approval_hours` counts as a rejection (timeout).
   - **promote** : on approval, moves the registry alias `champion` to the winner's version and gives
     the winner 100 % of the router's traffic (both audited). Skipped on rejection.
   - **record** : always runs; appends the outcome (approved / rejected / timed out, who, why) to the
     audit log and tags the MLflow run.
4. **reconcile** : always runs; the `champion` alias of each analysed experiment's model is made to
   match the routes store (the truth); a disagreement no rule settles fails it with a message.

A ship is a saga (include/abtest/decision.py, docs/canary.md): the experiment is marked concluded
first (later runs report `concluded`, never SRM; a second ship is refused), then the winner gets
100 % in the routes store, every router replica serves it, then `previous_champion` and `champion`
move, then the conclusion is recorded. A replica that does not converge restores the routes.

Conf (all optional): `experiments` (ids), `experiments_dir`, `events_root`, `data_root`, `as_of`.
"""


class MlflowReportLink(BaseOperatorLink):
    """Extra link of the analyse task: the MLflow run holding the results and the HTML report."""

    name = "A/B report (MLflow)"

    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        """Return the run URL that the task pushed as XCom ``report_run_url``."""
        try:
            url = ti_key.xcom_pull(
                task_ids=ti_key.task_id, key="report_run_url", map_indexes=ti_key.map_index
            )
        except AttributeError:  # a plain TaskInstanceKey (webserver side): the XCom holds the link
            return ""
        return str(url or "")


class AnalyseExperimentOperator(PythonOperator):
    """PythonOperator with the MLflow report link."""

    operator_extra_links = (MlflowReportLink(),)


def _env(actor: str | None = None, router: bool = False) -> Any:
    """The steps' Env: actor, run, MLflow server (its connection resolved once), router client."""
    from include.abtest.steps import Env
    from plugins.mlflow_hook import ModelgateMlflowHook
    from plugins.router_hook import RouterHook
    from plugins.task_utils import actor_of

    uri = ModelgateMlflowHook().get_conn()
    ctx = get_current_context()
    who = actor_of(dict(ctx))
    return Env(who, ctx["run_id"], uri, RouterHook(actor=actor or who) if router else None)


def _analyse(experiment_id: str) -> dict[str, Any]:
    from include.abtest import steps
    from plugins.task_utils import call

    ctx = get_current_context()
    summary = call(steps.analyse, experiment_id, dict(ctx["dag_run"].conf or {}), _env())
    ctx["ti"].xcom_push(key="report_run_url", value=summary.run_url)
    return dict(summary.to_xcom())


@dag(
    dag_id="ab_analysis",
    schedule="@hourly",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["modelgate", "abtest"],
    doc_md=DOC,
    default_args={"owner": "modelgate", "retries": 1, "retry_delay": timedelta(seconds=30)},
    params={
        "experiments": Param(None, type=["null", "array"], description="Only these experiment ids"),
        "experiments_dir": Param(
            None, type=["null", "string"], description="Folder of experiment YAML files"
        ),
        "events_root": Param(None, type=["null", "string"], description="Root of the router's event files"),
        "data_root": Param(None, type=["null", "string"], description="Root of relative outcome paths"),
        "as_of": Param(
            None, type=["null", "string"], description="End of the window, ISO time (default now)"
        ),
    },
)
def ab_analysis() -> None:
    @task
    def list_experiments() -> list[dict[str, str]]:
        from include.abtest import steps
        from plugins.task_utils import call

        conf = dict(get_current_context()["dag_run"].conf or {})
        return [{"experiment_id": e} for e in call(steps.list_experiments, conf)]

    @task
    def ship_candidates(summaries: list[dict[str, Any]]) -> list[dict[str, Any]]:
        from include.abtest import steps
        from plugins.task_utils import call

        return [s.to_xcom() for s in steps.ship_candidates(call(steps.summaries_of, list(summaries)))]

    @task_group
    def ship_gate(candidate: dict[str, Any]) -> None:
        approve = ApprovalOperator(
            task_id="approve",
            subject="{{ ti.xcom_pull(task_ids='ship_candidates')[ti.map_index]['form']['subject'] }}",
            body="{{ ti.xcom_pull(task_ids='ship_candidates')[ti.map_index]['form']['body'] }}",
            defaults="Reject",
            response_timeout=timedelta(hours=72),
            params={"reason": Param("", type="string", description="Why (recorded in the audit log)")},
        )

        @task
        def promote(candidate: dict[str, Any]) -> dict[str, Any]:
            from airflow.sdk.exceptions import AirflowSkipException

            from include.abtest import steps
            from plugins.task_utils import call

            ctx = get_current_context()
            answer = ctx["ti"].xcom_pull(task_ids="ship_gate.approve", map_indexes=ctx["ti"].map_index)
            summary = call(steps.Summary.from_xcom, candidate)
            approval = steps.approval(answer)
            if not approval.approved:
                # ApprovalOperator's skip of this task is lost inside a mapped task group (Airflow
                # NotPreviouslySkippedDep reads the skip XCom at map index -1; apache/airflow#67265)
                raise AirflowSkipException(f"{summary.experiment}: {approval.outcome}, not promoted")
            env = _env(actor=approval.by, router=True)
            conf = dict(ctx["dag_run"].conf or {})
            return dict(call(steps.promote, summary, answer, conf, env).to_xcom())

        @task(trigger_rule="all_done")
        def record(candidate: dict[str, Any]) -> dict[str, Any]:
            from include.abtest import steps
            from plugins.task_utils import call

            env = _env()
            ti = get_current_context()["ti"]
            answer = ti.xcom_pull(task_ids="ship_gate.approve", map_indexes=ti.map_index)
            promoted = ti.xcom_pull(task_ids="ship_gate.promote", map_indexes=ti.map_index)
            summary = call(steps.Summary.from_xcom, candidate)
            done = call(steps.Promoted.from_xcom, promoted) if promoted else None
            return dict(call(steps.record, summary, answer, done, env).to_xcom())

        promoted = promote(candidate)
        approve >> promoted >> record(candidate)

    @task(trigger_rule="all_done")
    def reconcile(summaries: list[dict[str, Any]]) -> list[dict[str, Any]]:
        from include.abtest import steps
        from plugins.task_utils import call

        env = _env(router=True)
        conf = dict(get_current_context()["dag_run"].conf or {})
        analysed = call(steps.summaries_of, list(summaries or []))
        return [r.to_xcom() for r in call(steps.reconcile, analysed, conf, env)]

    experiments = list_experiments()
    analysed = AnalyseExperimentOperator.partial(task_id="analyse", python_callable=_analyse).expand(
        op_kwargs=experiments
    )
    gate = ship_gate.expand(candidate=ship_candidates(analysed.output))
    gate >> reconcile(analysed.output)


ab_analysis()
