"""Settings of the developer tools (local stack, CLI, demo): every ``MODELGATE_*`` variable they read."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO = Path(__file__).resolve().parents[1]


class DevSettings(BaseSettings):
    """Configuration of the tools, read from ``MODELGATE_*`` environment variables."""

    model_config = SettingsConfigDict(env_prefix="MODELGATE_", extra="ignore", env_ignore_empty=True)

    home: Path = REPO / ".local"
    """Root of the local stack's state (databases, artifacts, events, demo output, secrets)."""

    mlflow_port: int = 5000
    """Loopback port of the stack's MLflow server."""

    airflow_port: int = 8080
    """Loopback port of the stack's Airflow API server."""

    router_port: int = 8500
    """Loopback port of the stack's first router replica."""

    router_replicas: int = Field(default=2, ge=1, le=16)
    """Router replicas ``make up`` starts, on ports ``router_port``, +1, +2, ... (all on one routes store)."""

    airflow_url: str = "http://127.0.0.1:8080"
    """Airflow API server the ``modelgate`` CLI talks to."""

    airflow_username: str = "admin"
    """Airflow user of the ``modelgate`` CLI."""

    airflow_password: str | None = None
    """Airflow password of the CLI; default the local stack's generated password."""

    demo_model: str = "churn"
    """Registered model name the demo uses."""

    profile: Literal["embedded", "production"] = "embedded"
    """What ``make up``/``make demo`` run: ``embedded`` (SQLite, LocalExecutor) or ``production`` (its own
    PostgreSQL cluster, CeleryExecutor with Redis and two workers, Prometheus; docs/production.md)."""

    postgres_port: int = 5432
    """Loopback port of the production profile's PostgreSQL cluster (``<home>/pg``)."""

    redis_port: int = 6379
    """Loopback port of the production profile's Redis (Celery broker)."""

    prometheus_port: int = 9090
    """Loopback port of the production profile's Prometheus."""

    dagruns_port: int = 9108
    """Loopback port of the production profile's DAG-run exporter (``modelgate_dag_runs``, scraped by Prometheus)."""


def get_dev_settings() -> DevSettings:
    """Return the tools' settings, read from the environment at call time."""
    return DevSettings()
