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
`modelgate.`: sha256, semver, signature, lineage, approval state, residency) and an audit record.

Trigger it from the UI (form below) or from CI (`modelgate trigger model_registration --conf ...`).

1. **validate_conf** : model name, artifact URI, optional lineage / semver / residency.
2. **fetch_artifact** : copy the file into the run's staging folder.
3. **validate_model** : ONNX checker, loads in onnxruntime, typed input/output signature, size limit.
4. **hash_artifact** : sha256 of the staged file.
5. **register_version** : one MLflow version carrying the whole manifest; the same sha256 again
   returns the existing version.
6. **assign_alias** : `challenger`; the first version of a model becomes `champion` directly.
7. **audit** : append the outcome to the hash-chained audit log.
8. **emit_asset** : emits `modelgate_model_registered` (extra: name, version), which
   `regression_testing` schedules on. Skipped when nothing new was registered.

Bad input fails the run at once (no retries) with one message naming the problem.
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
        "artifact_uri": Param("", type="string", description="Local path or URL of the .onnx file"),
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
            None, type=["null", "string"], description="Feature spec JSON (include.synthetic)"
        ),
        "actor": Param(None, type=["null", "string"], description="Who registers (default: triggering user)"),
    },
)
def model_registration() -> None:
    @task
    def validate_conf() -> dict[str, Any]:
        from include.registry.request import RegistrationRequest
        from plugins.task_utils import call

        ctx = get_current_context()
        conf = {k: v for k, v in (ctx["dag_run"].conf or {}).items()}
        return call(RegistrationRequest.from_conf, conf).to_dict()

    @task
    def fetch_artifact(request: dict[str, Any]) -> dict[str, str | None]:
        from include.registry import pipeline
        from plugins.task_utils import call

        return call(pipeline.fetch, request, get_current_context()["run_id"])

    @task
    def validate_model(staged: dict[str, str | None]) -> str:
        from include.registry import pipeline
        from plugins.task_utils import call

        return call(pipeline.validate, staged["model_path"])

    @task
    def hash_artifact(staged: dict[str, str | None], signature: str) -> str:
        from include.registry import pipeline
        from plugins.task_utils import call

        return call(pipeline.hash_artifact, staged["model_path"])

    @task
    def register_version(
        request: dict[str, Any], staged: dict[str, str | None], sha256: str
    ) -> dict[str, Any]:
        from include.registry import pipeline
        from plugins.mlflow_hook import ModelgateMlflowHook
        from plugins.task_utils import actor_of, call

        ModelgateMlflowHook().get_conn()
        ctx = get_current_context()
        return call(
            pipeline.register, request, staged, sha256, actor_of(ctx, request.get("actor")), ctx["run_id"]
        )

    @task
    def assign_alias(request: dict[str, Any], registered: dict[str, Any]) -> dict[str, Any]:
        from include.registry import pipeline
        from plugins.mlflow_hook import ModelgateMlflowHook
        from plugins.task_utils import actor_of, call

        ModelgateMlflowHook().get_conn()
        ctx = get_current_context()
        return call(pipeline.assign_alias, registered, actor_of(ctx, request.get("actor")), ctx["run_id"])

    @task
    def audit(request: dict[str, Any], registered: dict[str, Any], aliased: dict[str, Any]) -> int:
        from include.registry import pipeline
        from plugins.task_utils import actor_of, call

        ctx = get_current_context()
        rid = call(pipeline.record, registered, aliased, actor_of(ctx, request.get("actor")), ctx["run_id"])
        pipeline.cleanup(ctx["run_id"])
        return rid

    @task(outlets=[MODEL_REGISTERED])
    def emit_asset(registered: dict[str, Any], aliased: dict[str, Any], audit_id: int) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowSkipException

        if not registered["created"]:
            raise AirflowSkipException(f"{registered['uri']} was already registered: no new version to test")
        ctx = get_current_context()
        ctx["outlet_events"][MODEL_REGISTERED].extra = {
            "model_name": registered["name"],
            "version": registered["version"],
            "alias": aliased["alias"],
        }
        return registered

    request = validate_conf()
    staged = fetch_artifact(request)
    signature = validate_model(staged)
    sha = hash_artifact(staged, signature)
    registered = register_version(request, staged, sha)
    aliased = assign_alias(request, registered)
    audit_id = audit(request, registered, aliased)
    emit_asset(registered, aliased, audit_id)


model_registration()
