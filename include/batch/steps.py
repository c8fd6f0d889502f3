"""The steps of the ``nightly_batch_inference`` DAG, typed: each takes and returns frozen records.

plan → score (one per partition, local process or Kubernetes pod) → validate and publish → asset,
report. The records (:mod:`include.xcom`) are what the DAG's tasks hand each other through XCom: one
:class:`Job` per partition (references into the object store: the input partition, the pinned
``models:/name/N``, the output and quarantine folders), the :class:`Scored` result line of a job and
the :class:`Published` report. The scores themselves stay in the object store next to their
manifests; :mod:`include.batch.nightly` does the work.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from include.batch import nightly
from include.batch.pods import job_arguments
from include.xcom import XcomRecord

__all__ = [
    "Job",
    "Published",
    "Scored",
    "backend",
    "jobs_of",
    "plan",
    "pod_args",
    "publish",
    "score",
]


@dataclass(frozen=True)
class Job(XcomRecord):
    """One partition to score: the input file, the run's date, the pinned model, the output folders."""

    partition: str
    date: str
    model_uri: str
    output_dir: str
    quarantine_dir: str


@dataclass(frozen=True)
class Scored(XcomRecord):
    """A job's result line: the partition it read, ``scored`` or ``skipped`` (output current), rows."""

    input: str | None = None
    status: str | None = None
    rows: int = 0
    rows_per_s: int = 0


@dataclass(frozen=True)
class Published(XcomRecord):
    """What a run published: partitions that passed validation, their rows, and the quarantined ones."""

    date: str
    output_dir: str
    model_uri: str
    published: list[str]
    rows: int
    quarantined: list[dict[str, str]]

    def asset_uri(self) -> str:
        """Return the output folder as the URI of the day's Asset (``file://`` for a local folder)."""
        return self.output_dir if "://" in self.output_dir else f"file://{self.output_dir}"

    def asset_extra(self) -> dict[str, Any]:
        """Return the extra of the day's Asset event: date, model, rows and the number of partitions."""
        return {
            "date": self.date,
            "model_uri": self.model_uri,
            "rows": self.rows,
            "partitions": len(self.published),
        }

    def quarantine_summary(self) -> str | None:
        """Return a one-line account of the quarantined partitions, or None when there are none."""
        return nightly.quarantine_summary(self.to_xcom())


def plan(day: date, model_name: str, model_uri: str | None, input_root: str | None,
         output_root: str | None) -> list[Job]:  # fmt: skip
    """List the day's partitions and pin the model; return one job per partition.

    The model is the champion VERSION of the routes store's desired routes, never the MLflow alias
    alone (docs/security.md); an explicit ``model_uri`` must be a pinned version.

    Raises:
        BatchError: an alias URI, no champion in the routes store, no partitions.
    """
    from include.batch.champion import champion_from_routes, refuse_alias

    uri = refuse_alias(model_uri) if model_uri else champion_from_routes(model_name)
    return jobs_of(nightly.partition_jobs(nightly.plan_run(day, uri, input_root, output_root)))


def jobs_of(data: list[Any]) -> list[Job]:
    """Return the jobs of the ``plan`` XCom."""
    return [Job.from_xcom(d) for d in data]


def _plan_dict(jobs: list[Job]) -> dict[str, Any]:
    return nightly.plan_of([j.to_xcom() for j in jobs])


def backend(variable: str, kubernetes_enabled: bool) -> str:
    """Return the task the DAG branches to for the backend Variable's value (``score_local``/``pod_args``)."""
    return nightly.backend_task(variable, kubernetes_enabled)


def score(job: Job, providers: str, batch_rows: int) -> Scored:
    """Score one partition as a local process (the ``local`` backend).

    Raises:
        BatchInputError, BatchModelError: bad data or model (a retry cannot help).
        BatchError: any other failure (worth a retry).
    """
    args = job_arguments(
        job.model_uri, job.partition, job.output_dir, providers=providers, batch_rows=batch_rows
    )
    return Scored.from_xcom(nightly.run_local(args))


def pod_args(
    jobs: list[Job], dag_id: str, run_id: str, providers: str, batch_rows: int
) -> list[dict[str, Any]]:
    """Return the per-partition ``KubernetesPodOperator`` arguments (the ``kubernetes`` backend)."""
    from include.batch.pods import pod_expand_kwargs

    p = _plan_dict(jobs)
    return pod_expand_kwargs(p["partitions"], p["model_uri"], p["output_dir"], dag_id=dag_id, run_id=run_id,
                             providers=providers, batch_rows=batch_rows)  # fmt: skip


def publish(jobs: list[Job]) -> Published:
    """Validate every partition's output; quarantine the failing ones, publish the rest."""
    return Published.from_xcom(nightly.validate_and_publish(_plan_dict(jobs)))
