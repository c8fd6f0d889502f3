"""Settings of a nightly batch run that the DAG reads when it is parsed (``MODELGATE_BATCH_*``).

Light on purpose (pydantic-settings only): the DAG file imports it at parse time. The pods' own
settings (image, resources, secrets) are :class:`include.batch.pods.BatchPodSettings`.
"""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict


class BatchRunSettings(BaseSettings):
    """What the ``nightly_batch_inference`` DAG reads from ``MODELGATE_BATCH_*`` environment variables."""

    model_config = SettingsConfigDict(env_prefix="MODELGATE_BATCH_", extra="ignore", env_ignore_empty=True)

    kubernetes: bool = False
    """Whether the DAG has the Kubernetes branch (one GPU pod per partition); which branch runs is
    chosen at run time from the Airflow Variable ``modelgate_batch_backend``."""

    max_parallel: int = 4
    """Partitions scored at the same time by the local-process branch (mapped task limit)."""

    model: str = "churn"
    """Default registered model name of a run (DAG param ``model_name``)."""

    input_root: str | None = None
    """Default input root (DAG param); None: ``<home>/batch/input``."""

    output_root: str | None = None
    """Default output root (DAG param); None: ``<home>/batch/scores``."""

    queue: str = "default"
    """Executor queue of the scoring tasks (``score_local``, ``score_kubernetes``). The production
    profile sets ``gpu``: a Celery worker listening on that queue runs them (LocalExecutor ignores it)."""
