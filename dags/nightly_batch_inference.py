"""Nightly batch inference: score each input partition with the pinned champion (see doc_md below)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import Asset, AssetAlias, CronTriggerTimetable, Param, dag, get_current_context, task

from include.batch.settings import BatchRunSettings

BATCH_SCORES = AssetAlias("modelgate_batch_scores")
"""Each successful run adds one Asset per date through this alias: ``modelgate_batch_scores_<date>``."""

BACKEND_VARIABLE = "modelgate_batch_backend"
SETTINGS = BatchRunSettings()
MAX_PARALLEL = SETTINGS.max_parallel
# The kubernetes branch is part of the DAG only where the deployment enables it (an environment
# variable, read at parse time without touching the database); which branch runs is chosen at run
# time from the Airflow Variable `modelgate_batch_backend`.
KUBERNETES_ENABLED = SETTINGS.kubernetes

DOC = """
### nightly_batch_inference

Scores the day's input partitions with the **champion** model, one mapped task per partition,
validates the outputs with the great-expectations checkpoint `validation/batch_outputs.checkpoint.json`,
quarantines failing partitions and publishes the rest.

- **Schedule**: 02:00 UTC daily; a run scores the previous day, `<input_root>/dt=YYYY-MM-DD/part-*.parquet`
  (param `date` overrides it). Every step is idempotent per (date, partition), so re-runs, catch-up
  and `airflow backfill create` are safe: a partition whose manifest already records the same model
  version and input fingerprint is skipped.
1. **plan** : lists the partitions and takes the champion VERSION (`models:/<name>/N`) of the model's desired routes in the routes store (an MLflow alias alone is never scored);
   every partition of the run uses that version, even if the alias moves during the night.
2. **choose_backend** : reads the Airflow Variable `modelgate_batch_backend` (`local`, the default, or
   `kubernetes`) at run time.
3. **score_local** (mapped) : runs `python -m include.batch` per partition as a local process, or
   **score_kubernetes** (mapped `KubernetesPodOperator`, deferrable): the same entrypoint and
   arguments in a GPU pod (`nvidia.com/gpu: 1`, toleration, node selector, Secrets as env refs,
   labels with dag/run/partition), deleted on finish; present when the deployment sets
   `MODELGATE_BATCH_KUBERNETES=1` (pod settings: `MODELGATE_BATCH_*`, see `docs/batch.md`).
   At most `MODELGATE_BATCH_MAX_PARALLEL` partitions run at once.
4. **validate_and_publish** (runs even when partitions failed) : checkpoint per partition (row count
   equals the input's, no nulls, scores in [0, 1]); failing or missing outputs move to
   `<output_root>/_quarantine/dt=YYYY-MM-DD/` with a reason; `_PUBLISHED.json` lists the rest.
5. **emit_asset** : one Asset per date, `modelgate_batch_scores_<date>`, through the alias
   `modelgate_batch_scores` (extra: model, rows, partitions).
6. **report** : fails the run when a partition was quarantined, naming each with its reason.
"""


def _kubernetes_scoring(jobs: Any) -> tuple[Any, Any]:
    """Build the kubernetes branch (imports the provider; only called when the deployment enables it)."""
    from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator

    from include.batch.pods import BatchPodSettings, pod_operator_kwargs
    from include.config import get_settings

    @task(retries=2)
    def pod_args(jobs: list[dict[str, str]]) -> list[dict[str, Any]]:
        from include.batch import steps
        from plugins.task_utils import call

        ctx = get_current_context()
        p = ctx["params"]
        todo = call(steps.jobs_of, list(jobs))
        return list(
            call(steps.pod_args, todo, ctx["dag"].dag_id, ctx["run_id"], p["providers"], p["batch_rows"])
        )

    args = pod_args(jobs)
    kw = pod_operator_kwargs(BatchPodSettings(), get_settings().tracking_uri)
    return args, KubernetesPodOperator.partial(task_id="score_kubernetes", **kw).expand_kwargs(args)


@dag(
    dag_id="nightly_batch_inference",
    schedule=CronTriggerTimetable("0 2 * * *", timezone="UTC", interval=timedelta(days=1)),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=2,
    tags=["modelgate", "batch"],
    doc_md=DOC,
    # queue: the production profile's `gpu` Celery worker runs every task of this DAG (MODELGATE_BATCH_QUEUE)
    default_args={
        "owner": "modelgate",
        "retries": 2,
        "retry_delay": timedelta(seconds=30),
        "queue": SETTINGS.queue,
    },
    params={
        "model_name": Param(SETTINGS.model, type="string"),
        "model_uri": Param(
            None,
            type=["null", "string"],
            description="A pinned version (models:/name/N) instead of the routes store's champion; aliases are refused",
        ),
        "date": Param(
            None, type=["null", "string"], description="YYYY-MM-DD; default: the day before the run"
        ),
        "input_root": Param(SETTINGS.input_root, type=["null", "string"]),
        "output_root": Param(SETTINGS.output_root, type=["null", "string"]),
        "providers": Param("auto", enum=["auto", "cpu", "cuda"]),
        "batch_rows": Param(131_072, type="integer", minimum=1),
    },
)
def nightly_batch_inference() -> None:
    @task
    def plan() -> list[dict[str, Any]]:
        from include.batch import steps
        from plugins.task_utils import call

        ctx = get_current_context()
        p = ctx["params"]
        day = pendulum.parse(p["date"]).date() if p["date"] else ctx["data_interval_start"].date()
        jobs = call(steps.plan, day, p["model_name"], p["model_uri"], p["input_root"], p["output_root"])
        return [j.to_xcom() for j in jobs]

    @task.branch
    def choose_backend() -> str:
        from airflow.sdk import Variable

        from include.batch import steps
        from plugins.task_utils import call

        return str(call(steps.backend, Variable.get(BACKEND_VARIABLE, default="local"), KUBERNETES_ENABLED))

    @task(max_active_tis_per_dagrun=MAX_PARALLEL, retry_exponential_backoff=True)
    def score_local(job: dict[str, str]) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowFailException

        from include.batch import steps
        from include.batch.errors import BatchInputError, BatchModelError
        from plugins.task_utils import call

        p = get_current_context()["params"]
        todo = call(steps.Job.from_xcom, job)
        try:
            return dict(steps.score(todo, p["providers"], p["batch_rows"]).to_xcom())
        except (BatchInputError, BatchModelError) as e:  # bad data or model: a retry cannot help
            raise AirflowFailException(e.message) from e

    @task(trigger_rule="all_done")
    def validate_and_publish(jobs: list[dict[str, str]]) -> dict[str, Any]:
        from include.batch import steps
        from plugins.task_utils import call

        return dict(call(steps.publish, call(steps.jobs_of, list(jobs))).to_xcom())

    @task(outlets=[BATCH_SCORES])
    def emit_asset(report: dict[str, Any]) -> None:
        from include.batch import steps
        from plugins.task_utils import call

        done = call(steps.Published.from_xcom, report)
        if not done.published:
            return
        events = get_current_context()["outlet_events"]
        asset = Asset(name=f"modelgate_batch_scores_{done.date}", uri=done.asset_uri())
        events[BATCH_SCORES].add(asset, extra=done.asset_extra())

    @task
    def report(report: dict[str, Any]) -> None:
        from airflow.sdk.exceptions import AirflowFailException

        from include.batch import steps
        from plugins.task_utils import call

        summary = call(steps.Published.from_xcom, report).quarantine_summary()
        if summary:
            raise AirflowFailException(summary)

    jobs = plan()
    branch = choose_backend()
    jobs >> branch
    scored: list[Any] = [branch >> score_local.expand(job=jobs)]
    if KUBERNETES_ENABLED:
        args, pods = _kubernetes_scoring(jobs)
        branch >> args
        scored.append(pods)
    result = validate_and_publish(jobs)
    scored >> result
    emit_asset(result)
    report(result)


nightly_batch_inference()
