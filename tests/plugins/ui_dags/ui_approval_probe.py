"""A DAG that waits for one approval about a model, then records the answer (the plugin's answer test)."""

from __future__ import annotations

import pendulum
from airflow.providers.standard.operators.hitl import HITLOperator
from airflow.sdk import dag, task

MODEL = "ui-probe"


@dag(
    dag_id="ui_approval_probe",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["test"],
    doc_md="Waits for an approval about model ui-probe (assigned to ana), then returns the answer.",
)
def ui_approval_probe() -> None:
    ask = HITLOperator(
        task_id="approve",
        subject=f"Canary stage 1 of {MODEL} is marginal: continue?",
        body=(
            f"**{MODEL}** v2 vs champion v1\n\n"
            "| metric | class | canary | baseline | effect [interval] | tolerance | p | n canary / baseline |\n"
            "| --- | --- | --- | --- | --- | --- | --- | --- |\n"
            "| error_rate | marginal | 0.012 | 0.01 | 0.002 [-0.001, 0.005] | 0.01 | 0.2 | 900 / 900 |\n"
        ),
        options=["Approve", "Reject"],
        defaults=["Reject"],
        assigned_users=[{"id": "ana", "name": "ana"}],
    )

    @task
    def record(answer: dict) -> str:  # type: ignore[type-arg]
        return ",".join(answer["chosen_options"]) + " by " + str(answer["responded_by_user"]["name"])

    record(ask.output)


ui_approval_probe()
