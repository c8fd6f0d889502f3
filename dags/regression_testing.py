"""Regression-test a newly registered model version against the champion (see doc_md below)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import Asset, Param, dag, get_current_context, task

MODEL_REGISTERED = Asset(name="modelgate_model_registered", uri="modelgate://registry/model_registered")
REGRESSION_PASSED = Asset(name="modelgate_regression_passed", uri="modelgate://registry/regression_passed")

DOC = """
### regression_testing

Compares a challenger version with the current **champion** before any live traffic, and writes
the verdict back to the version's `modelgate.regression.*` tags. Scheduled on the
`modelgate_model_registered` asset (emitted by `model_registration`), or triggered with conf
`{"model_name": "churn", "version": "2"}`. Thresholds: `policies/default.yaml`, overridden by
`policies/<model>.yaml` (see `docs/regression.md`).

1. **resolve_target** : version to test, champion version, both manifests, the model's policy.
2. **first_version** : no champion to compare with (the first version is champion already):
   records verdict `pass` ("first version"), an audit record, and skips the rest (no asset event).
3. **check_contract** : signature compatible with the champion's; a breaking change needs a major
   semver bump (then comparisons with the champion are skipped and the report says so).
4. **prepare_inputs** : synthetic rows from the champion's feature spec plus edge cases, validated
   by the great-expectations suite `validation/regression_inputs.suite.json`.
5. **score** : both models on the inputs; the challenger's outputs checked by
   `validation/regression_outputs.suite.json` (no null/NaN, probabilities in [0, 1] summing to 1,
   known classes); determinism (same input twice).
6. **compare** : agreement rate, score distribution (two-sample KS, PSI), quality on the labelled
   holdout of the policy, p99 single-row latency against the champion's.
7. **decide** : verdict, every figure as a version tag, report (JSON + HTML with plots) and GE
   results (JSON + Data Docs HTML) as artifacts of an MLflow run in `modelgate-regression`, audit record.
8. **emit_passed** : on `pass`, emits `modelgate_regression_passed` (extra: model_name, version),
   which `canary_promotion` schedules on; on `fail` this task fails with the reasons, so the run
   ends failed and no asset event is emitted (the tags and the report are written before).
"""


@dag(
    dag_id="regression_testing",
    schedule=[MODEL_REGISTERED],
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=4,
    tags=["modelgate", "regression"],
    doc_md=DOC,
    default_args={"owner": "modelgate", "retries": 2, "retry_delay": timedelta(seconds=10)},
    params={
        "model_name": Param(
            None, type=["null", "string"], description="Registered model name (conf trigger)"
        ),
        "version": Param(
            None, type=["null", "string", "integer"], description="Version to test (conf trigger)"
        ),
    },
)
def regression_testing() -> None:
    @task
    def resolve_target() -> dict[str, Any]:
        from include.regression import steps
        from plugins.mlflow_hook import ModelgateMlflowHook
        from plugins.task_utils import call

        uri = ModelgateMlflowHook().get_conn()
        ctx = get_current_context()
        events = ctx.get("triggering_asset_events") or {}
        extras = [dict(e.extra or {}) for evs in events.values() for e in evs]
        return call(steps.resolve, ctx["dag_run"].conf or {}, extras, uri).to_xcom()

    @task.short_circuit
    def first_version(target: dict[str, Any]) -> bool:
        from include.regression import steps
        from plugins.mlflow_hook import ModelgateMlflowHook
        from plugins.task_utils import actor_of, call

        uri = ModelgateMlflowHook().get_conn()
        ctx = get_current_context()
        t = call(steps.Target.from_xcom, target)
        return bool(call(steps.record_first_version, t, actor_of(ctx), ctx["run_id"], uri))

    @task
    def check_contract(target: dict[str, Any]) -> dict[str, Any]:
        from include.regression import steps
        from plugins.task_utils import call

        return call(steps.check_contract, call(steps.Target.from_xcom, target)).to_xcom()

    @task
    def prepare_inputs(target: dict[str, Any], contract: dict[str, Any]) -> dict[str, Any]:
        from include.regression import steps
        from plugins.mlflow_hook import ModelgateMlflowHook
        from plugins.task_utils import call

        uri = ModelgateMlflowHook().get_conn()
        t, c = call(steps.Target.from_xcom, target), call(steps.Check.from_xcom, contract)
        return call(steps.prepare_inputs, t, c, get_current_context()["run_id"], uri).to_xcom()

    @task
    def score(target: dict[str, Any], contract: dict[str, Any], prepared: dict[str, Any]) -> dict[str, Any]:
        from include.regression import steps
        from plugins.mlflow_hook import ModelgateMlflowHook
        from plugins.task_utils import call

        uri = ModelgateMlflowHook().get_conn()
        t, c = call(steps.Target.from_xcom, target), call(steps.Check.from_xcom, contract)
        return call(steps.score, t, c, call(steps.Prepared.from_xcom, prepared), uri).to_xcom()

    @task
    def compare(
        target: dict[str, Any], contract: dict[str, Any], prepared: dict[str, Any], scored: dict[str, Any]
    ) -> dict[str, Any]:
        from include.regression import steps
        from plugins.mlflow_hook import ModelgateMlflowHook
        from plugins.task_utils import call

        uri = ModelgateMlflowHook().get_conn()
        t, c = call(steps.Target.from_xcom, target), call(steps.Check.from_xcom, contract)
        p, s = call(steps.Prepared.from_xcom, prepared), call(steps.Scored.from_xcom, scored)
        return call(steps.compare, t, c, p, s, uri).to_xcom()

    @task
    def decide(
        target: dict[str, Any],
        contract: dict[str, Any],
        prepared: dict[str, Any],
        scored: dict[str, Any],
        compared: dict[str, Any],
    ) -> dict[str, Any]:
        from include.regression import steps
        from plugins.mlflow_hook import ModelgateMlflowHook
        from plugins.task_utils import actor_of, call

        uri = ModelgateMlflowHook().get_conn()
        ctx = get_current_context()
        t, c = call(steps.Target.from_xcom, target), call(steps.Check.from_xcom, contract)
        p, s = call(steps.Prepared.from_xcom, prepared), call(steps.Scored.from_xcom, scored)
        m = call(steps.Compared.from_xcom, compared)
        return call(steps.decide, t, c, p, s, m, actor_of(ctx), ctx["run_id"], uri).to_xcom()

    @task(outlets=[REGRESSION_PASSED])
    def emit_passed(decision: dict[str, Any]) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowFailException

        from include.regression import steps
        from plugins.task_utils import call

        d = call(steps.Decision.from_xcom, decision)
        if not d.passed:
            raise AirflowFailException(d.failure())
        ctx = get_current_context()
        ctx["outlet_events"][REGRESSION_PASSED].extra = {"model_name": d.model_name, "version": d.version}
        return decision

    target = resolve_target()
    gate = first_version(target)
    contract = check_contract(target)
    gate >> contract
    prepared = prepare_inputs(target, contract)
    scored = score(target, contract, prepared)
    compared = compare(target, contract, prepared, scored)
    emit_passed(decide(target, contract, prepared, scored, compared))


regression_testing()
