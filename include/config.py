"""Settings of the modelgate domain library (one settings class, env prefix ``MODELGATE_``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_home() -> Path:
    """``.local`` of the checkout this package runs from (so CLIs work from any directory), else of cwd."""
    root = Path(__file__).resolve().parents[1]
    return (root if (root / "pyproject.toml").is_file() else Path.cwd()) / ".local"


class Settings(BaseSettings):
    """Configuration read from ``MODELGATE_*`` environment variables."""

    model_config = SettingsConfigDict(env_prefix="MODELGATE_", extra="ignore", env_ignore_empty=True)

    home: Path = Field(default_factory=_default_home)
    """Root of all runtime state (databases, artifacts, events, demo output)."""

    tracking_uri: str = "http://127.0.0.1:5000"
    """MLflow tracking and registry server."""

    mlflow_ui_url: str = ""
    """Base URL people open for MLflow's UI in links of the evidence view; default ``tracking_uri``."""

    audit_db_url: str | None = None
    """SQLAlchemy URL of the audit log; defaults to SQLite under ``home``."""

    secrets_dir: Path | None = None
    """Folder of generated secrets (audit HMAC key, audit head anchor); default ``<home>/secrets``."""

    mlflow_identities_dir: Path | None = None
    """Folder holding the MLflow identities' ``mlflow-<user>-password`` files when they are mounted
    read-only apart from the writable secrets folder (compose: ``/run/secrets``); default the secrets folder."""

    registration_roots: str = ""
    """Extra places registration may read from, comma-separated: absolute directories and URL
    prefixes (``https://host/path/``, ``s3://bucket/prefix/``). Always allowed: ``<home>/inbox`` and
    the MLflow artifact store (``runs:/``, ``mlflow-artifacts:/``). See docs/security.md."""

    max_model_bytes: int = 512 * 1024 * 1024
    """Largest ONNX artifact accepted for registration."""

    router_url: str = "http://127.0.0.1:8500"
    """Base URL of the ONNX router."""

    analytics_engine: Literal["duckdb", "spark"] = "duckdb"
    """Query engine of the event analytics (A/B reduction, canary window): ``duckdb`` runs embedded
    in the task's process, ``spark`` runs the same SQL on a Spark session (``docs/analytics.md``)."""

    analytics_memory_limit: str = "384MB"
    """DuckDB's memory limit; beyond it DuckDB spills to ``<home>/analytics-tmp``. It bounds DuckDB's
    buffer manager, not the whole process: at 100M events the analysis peaked at 0.88 GiB RSS with
    384MB and 1.10 GiB with 512MB; 256MB fails the A/B reduction (``docs/benchmarks.md``)."""

    analytics_threads: int = 0
    """DuckDB worker threads; 0 (the default) means one per CPU of the machine."""

    spark_master: str = "local[2]"
    """Spark master URL when the engine is ``spark`` (``local[N]``, ``spark://host:7077``, ``yarn``)."""

    router_admin_token: str = Field(
        default="", validation_alias=AliasChoices("MODELGATE_ROUTER_ADMIN_TOKEN", "ROUTER_ADMIN_TOKEN")
    )
    """Bearer token of the router's admin API (also read from ``ROUTER_ADMIN_TOKEN``, the router's own name)."""

    events_root: str | None = Field(
        default=None, validation_alias=AliasChoices("MODELGATE_EVENTS_ROOT", "ROUTER_EVENTS_ROOT")
    )
    """Where the router writes prediction events (local folder or fsspec URL); default ``<home>/events``."""

    policy_dir: Path | None = None
    """Folder of the regression and canary policy files; default the repository's ``policies/``."""

    canary_policy: Path | None = None
    """One canary policy file used for every model (overrides the lookup in ``policy_dir``)."""

    canary_notify_file: Path | None = None
    """File the built-in canary callback appends to; default ``<home>/canary-notifications.jsonl``."""

    experiments_dir: Path | None = None
    """Folder of the A/B experiment definitions; default the repository's ``experiments/``."""

    ab_data_root: Path | None = None
    """Where the A/B analysis reads outcome and covariate tables; default ``home``."""

    canary_callbacks: str = ""
    """Callbacks allowed besides the built-ins, comma-separated ``package.module:function`` (docs/security.md)."""

    drift_alert: str | None = None
    """``package.module:function`` called with each drift alert; default ``include.canary.notify:log_event``."""

    region: str | None = None
    """Region this worker (Airflow worker pool, batch job) runs in (``MODELGATE_REGION``). Model versions
    whose ``modelgate.residency`` does not allow it are refused, and events of another region are not
    read (``docs/privacy.md``). None: residency is not enforced."""

    erasure_roots: str = ""
    """Derived data an erasure also cleans, comma-separated ``folder`` or ``folder#column`` (default
    column ``unit_id``): folders of Parquet files keyed by unit (batch outputs, outcome tables). The
    events root is always cleaned."""

    retention_days: dict[str, int] = Field(default_factory=dict)
    """Days event partitions are kept, per region, as JSON (``{"me-central-1": 30, "eu-west-1": 90}``);
    a region not listed keeps ``retention_default_days``."""

    retention_default_days: int = Field(default=90, ge=1)
    """Days event partitions are kept in a region that ``retention_days`` does not list."""

    events_roots: dict[str, str] = Field(default_factory=dict)
    """Events root per region as JSON (``{"me-central-1": "s3://me-events/events"}``): the root of
    ``region`` when ``events_root`` is not set."""

    def resolved_events_root(self) -> str:
        """Return the events root: ``events_root``, else this region's in ``events_roots``, else ``<home>/events``."""
        if self.events_root:
            return self.events_root
        if self.region and self.region in self.events_roots:
            return self.events_roots[self.region]
        return str(self.home / "events")

    def resolved_audit_db_url(self) -> str:
        """Return the audit database URL, creating the SQLite folder when defaulted."""
        if self.audit_db_url:
            return self.audit_db_url
        self.home.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{self.home / 'audit.db'}"


def get_settings() -> Settings:
    """Return the settings, read from the environment at call time."""
    return Settings()
