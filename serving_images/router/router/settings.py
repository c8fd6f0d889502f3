"""Settings of the router (one class, env prefix ``ROUTER_``), validated at start."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from router.events import WRITER_NICE


class ApiKey(BaseSettings):
    """One API key: a name (recorded as the actor of changes), a secret token, and its roles."""

    model_config = SettingsConfigDict(extra="forbid")

    name: str
    """Who holds the key; written to the change log as the actor."""

    token: SecretStr
    """The bearer token."""

    roles: list[str] = Field(default_factory=list)
    """``admin`` (read and change routes), ``read`` (read admin state), ``pin`` (may send ``X-Variant``)."""


class RouterSettings(BaseSettings):
    """Configuration read from ``ROUTER_*`` environment variables and the command line."""

    model_config = SettingsConfigDict(env_prefix="ROUTER_", extra="ignore")

    routes: Path | None = None
    """Routes YAML file loaded at start (``--routes``)."""

    host: str = "127.0.0.1"
    """Address to bind."""

    port: int = Field(default=8500, ge=0, le=65535)
    """TCP port to bind."""

    grpc_port: int | None = Field(default=None, ge=1, le=65535)
    """TCP port of the OIP v2 gRPC service (``inference.GRPCInferenceService``) on ``host``; unset: off."""

    grpc_server: Literal["native", "grpcio"] = "native"
    """gRPC implementation: ``native`` (HTTP/2 in the router's own asyncio protocol, ``router/grpc_h2.py``)
    or ``grpcio`` (``grpc.aio``, about five times the CPU per call; ``docs/benchmarks.md``)."""

    workers: int = Field(default=1, ge=1, le=64)
    """Worker processes; each holds its own sessions and follows the routes store."""

    admin_token: SecretStr | None = None
    """Bearer token of the ``admin`` key (roles admin, read, pin). Without it the admin API refuses all."""

    api_keys: list[ApiKey] = Field(default_factory=list)
    """Extra keys as JSON: ``[{"name": "ci", "token": "...", "roles": ["read"]}]``."""

    state_dir: Path = Path(".local/router")
    """Runtime state: accepted routes document, change log (JSONL), guard events, model cache."""

    cache_dir: Path | None = None
    """Download cache for registry artifacts; defaults to ``state_dir/cache``."""

    events_root: str = ".local/events"
    """Root of the Parquet event files: a local directory or an fsspec URL (``s3://bucket/events``)."""

    events_enabled: bool = True
    """Write prediction events."""

    events_flush_rows: int = Field(default=20_000, ge=1)
    """Flush the event buffer when it holds this many records."""

    events_flush_seconds: float = Field(default=5.0, gt=0)
    """Flush the event buffer at least this often."""

    events_max_buffer: int = Field(default=1_000_000, ge=1)
    """Records kept in memory while the sink fails; beyond this they are dropped and counted."""

    events_writer_nice: int = Field(default=WRITER_NICE, ge=0, le=19)
    """Nice value of the event writer process (it only lowers its priority). At 10 it keeps up with a
    serving process that keeps the CPU busy; at 19 it mostly runs while the serving process waits, and
    under sustained saturation falls behind, holds up to ``events_max_buffer`` records and counts the
    rest as dropped."""

    events_writer_idle: bool = False
    """Run the event writer process under ``SCHED_IDLE`` (Linux): it gets a CPU only when nothing else
    wants it, and a request that arrives takes the CPU back at once, so the writer never delays an
    answer. Where the serving process has a CPU to itself and another is free, the kernel runs the
    writer there. On one saturated CPU the writer falls behind instead: up to ``events_max_buffer``
    records wait, the rest are dropped and counted (``router_events_dropped_total``). On in the
    Kubernetes Deployment (a pod with a second CPU); off by default, because the embedded stack's router
    shares two CPUs with Airflow and MLflow, whose processes would starve it."""

    events_input_sample: float = Field(default=0.01, ge=0.0, le=1.0)
    """Share of scored requests of consenting units (``X-Consent: true``) whose first input row is
    recorded in the event's ``inputs`` column (JSON ``{input name: flat list}``) for drift monitoring;
    0 turns it off. Units without consent are never sampled."""

    consent_default: bool = False
    """Consent of a request that sends neither ``X-Consent`` nor OIP v2 ``parameters.consent``. False
    (deny) unless the deployment documents a legal basis for another default (``docs/privacy.md``).
    Events of requests without consent hold no unit id and no sampled inputs."""

    region: str | None = Field(
        default=None, validation_alias=AliasChoices("ROUTER_REGION", "MODELGATE_REGION")
    )
    """Region this replica runs in (``ROUTER_REGION``, else ``MODELGATE_REGION``). A model version whose
    ``modelgate.residency`` tag does not allow it is refused at load. None: residency is not enforced."""

    max_body_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)
    """Largest request body accepted; larger bodies get 413."""

    default_model: str | None = None
    """Model that ``POST /invocations`` scores; defaults to the first model of the routes document."""

    tracking_uri: str | None = None
    """MLflow tracking/registry URI for ``models:/`` sources; falls back to ``MLFLOW_TRACKING_URI``."""

    require_sha256: bool = True
    """Refuse registry versions that carry no ``modelgate.sha256`` tag."""

    shadow_queue: int = Field(default=1024, ge=1)
    """Pending shadow requests; beyond this shadow scoring is skipped and counted."""

    stats_window_seconds: float = Field(default=60.0, gt=0)
    """Time window of the per-variant live statistics."""

    shutdown_grace_seconds: float = Field(default=5.0, ge=0, le=300)
    """On SIGTERM, how long the router keeps accepting and answering (readiness already false, every
    answer carrying ``Connection: close``) before it closes its listener. Load balancers and kube-proxy
    take seconds to stop sending to a terminating pod, and most clients do not retry a POST; 5 s covers
    endpoint propagation in a typical cluster. 0 closes the listener at once (tests that want speed)."""

    drain_timeout_seconds: float = Field(default=10.0, ge=0)
    """After the grace period, how long requests still in flight may take before connections close."""

    ssl_certfile: Path | None = None
    """TLS certificate (PEM); with ``ssl_keyfile`` the router serves HTTPS."""

    ssl_keyfile: Path | None = None
    """TLS private key (PEM)."""

    store_url: str | None = None
    """SQLAlchemy URL of the control-plane store (desired routes + audit log) that every replica follows:
    PostgreSQL in production, the stack's SQLite audit database locally. Unset: a SQLite file
    ``state_dir/control.db`` of this router alone (standalone use; ``--routes`` seeds it)."""

    store_poll_seconds: float = Field(default=0.5, gt=0)
    """How often the control thread reads the store's generation (one small query)."""

    store_timeout_seconds: float = Field(default=5.0, gt=0)
    """Busy timeout (SQLite) or connect timeout (PostgreSQL) of store calls."""

    audit_key_file: Path | None = None
    """HMAC key of the audit log that route changes are appended to (the same key as the domain library's
    ``<secrets>/audit-hmac.key``). Unset: ``MODELGATE_SECRETS_DIR`` or ``MODELGATE_HOME/secrets`` when
    set, else ``state_dir/secrets``; created 0600 when missing."""

    log_level: str = "info"
    """Python logging level."""

    @field_validator("log_level")
    @classmethod
    def _level(cls, v: str) -> str:
        if v.upper() not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise ValueError(f"log_level must be debug, info, warning or error, not {v!r}")
        return v.lower()

    def resolved_store_url(self) -> str:
        """Return the store URL (a SQLite file under the state dir when none is set)."""
        return self.store_url or f"sqlite:///{(self.state_dir / 'control.db').resolve()}"

    def resolved_audit_key_file(self) -> Path:
        """Return the audit key file (see ``audit_key_file``)."""
        if self.audit_key_file is not None:
            return self.audit_key_file
        folder = os.environ.get("MODELGATE_SECRETS_DIR")
        if not folder and os.environ.get("MODELGATE_HOME"):
            folder = str(Path(os.environ["MODELGATE_HOME"]) / "secrets")
        return (Path(folder) if folder else self.state_dir / "secrets") / "audit-hmac.key"

    def resolved_cache_dir(self) -> Path:
        """Return the artifact cache directory."""
        return self.cache_dir if self.cache_dir is not None else self.state_dir / "cache"
