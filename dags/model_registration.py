"""Register an ONNX model version in MLflow with its manifest (see doc_md below)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import Asset, Param, dag, get_current_context, task

MODEL_REGISTERED = Asset(name="modelgate_model_registered", uri="modelgate://registry/model_registered")

DOC = """
### model_registration

Registers an ONNX model in the MLflow registry with a **manifest** (version tags under
`modelgate.`: sha256, semver, signature, lineage, approval state, residency) and audit records.

Trigger it from the UI (form below) or from CI (`modelgate trigger model_registration --conf ...`).
The actor recorded everywhere is the authenticated user who triggered the run, never a conf field.

1. **validate_conf** : model name, artifact URI, optional lineage / semver / residency / feature
   spec; `artifact_uri` and `feature_spec_uri` only from `$MODELGATE_HOME/inbox`, the MLflow artifact
   store (`runs:/`, `mlflow-artifacts:/`) or `MODELGATE_REGISTRATION_ROOTS` (docs/security.md).
2. **stage** : fetch into a worker-local folder (removed on success and failure), validate the ONNX
   model once (checker, onnxruntime, typed signature, size limit), sha256 once, log it to an MLflow
   run. XCom carries the `runs:/` URI, the sha256 and the signature, never a local path.
3. **register_version** : one MLflow version carrying the whole manifest, audited once; the same
   sha256 again returns the existing version.
4. **assign_alias** : `challenger`; the first version of a model becomes `champion` directly (audited).
5. **emit_asset** : emits `modelgate_model_registered` (extra: name, version), which
   `regression_testing` schedules on. Skipped when nothing new was registered.

Bad input fails the run at once (no retries) with one message naming the problem, and leaves one
`model_registration.refused` audit record, no version and no staging folder.
"""


@dag(
    dag_id="model_registration",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=4,
    tags=["modelgate", "registry"],
    doc_md=DOC,
    default_args={"owner": "modelgate", "retries": 2, "retry_delay": timedelta(seconds=10)},
    params={
        "model_name": Param("", type="string", description="Registered model name, e.g. churn"),
        "artifact_uri": Param(
            "", type="string", description="The .onnx file: a name in the inbox, runs:/..., or an allowed root"
        ),
        "lineage": Param(
            None,
            type=["null", "object"],
            description="git_sha, data_uri, data_sha256, params, metrics, source_run",
        ),
        "semver": Param(
            None, type=["null", "string"], description="Explicit MAJOR.MINOR.PATCH (default: computed)"
        ),
        "residency": Param(
            None, type=["null", "string"], description="Data-residency region, e.g. eu-west-1"
        ),
        "feature_spec_uri": Param(
            None, type=["null", "string"], description="Feature spec JSON (include.synthetic), same roots"
        ),
    },
)
def model_registration() -> None:
    @task
    def validate_conf() -> dict[str, Any]:
        from include.registry import steps
        from plugins.task_utils import actor_of, call

        ctx = get_current_context()
        conf = dict(ctx["dag_run"].conf or {})
        return call(steps.validate, conf, actor_of(ctx), ctx["run_id"]).to_xcom()

    @task
    def stage(request: dict[str, Any]) -> dict[str, Any]:
        from include.registry import steps
        from plugins.mlflow_hook import ModelgateMlflowHook
        from plugins.task_utils import actor_of, call

        uri = ModelgateMlflowHook().get_conn()
        ctx = get_current_context()
        req = call(steps.RegistrationRequest.from_xcom, request)
        return call(steps.stage, req, actor_of(ctx), ctx["run_id"], uri).to_xcom()

    @task
    def register_version(request: dict[str, Any], staged: dict[str, Any]) -> dict[str, Any]:
        from include.registry import steps
        from plugins.mlflow_hook import ModelgateMlflowHook
        from plugins.task_utils import actor_of, call

        uri = ModelgateMlflowHook().get_conn()
        ctx = get_current_context()
        req, model = call(steps.RegistrationRequest.from_xcom, request), call(steps.StagedModel.from_xcom, staged)
        return call(steps.register, req, model, actor_of(ctx), ctx["run_id"], uri).to_xcom()

    @task
    def assign_alias(registered: dict[str, Any]) -> dict[str, Any]:
        from include.registry import steps
        from plugins.mlflow_hook import ModelgateMlflowHook
        from plugins.task_utils import actor_of, call

        uri = ModelgateMlflowHook().get_conn()
        ctx = get_current_context()
        version = call(steps.Registered.from_xcom, registered)
        return call(steps.assign_alias, version, actor_of(ctx), ctx["run_id"], uri).to_xcom()

    @task(outlets=[MODEL_REGISTERED])
    def emit_asset(registered: dict[str, Any], aliased: dict[str, Any]) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowSkipException

        from include.registry import steps
        from plugins.task_utils import call

        version = call(steps.Registered.from_xcom, registered)
        alias = call(steps.AliasAssigned.from_xcom, aliased)
        if not version.created:
            raise AirflowSkipException(f"{version.uri} was already registered: no new version to test")
        ctx = get_current_context()
        ctx["outlet_events"][MODEL_REGISTERED].extra = {
            "model_name": version.name,
            "version": version.version,
            "alias": alias.alias,
        }
        return registered

    request = validate_conf()
    staged = stage(request)
    registered = register_version(request, staged)
    aliased = assign_alias(registered)
    emit_asset(registered, aliased)


model_registration()
