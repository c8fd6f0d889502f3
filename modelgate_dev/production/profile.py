"""``MODELGATE_PROFILE=production``: the topology of ``docker-compose.yaml``, run natively on loopback.

The environment is the contract's rendering (:mod:`modelgate_dev.production.contract`) for a native
:class:`~modelgate_dev.production.contract.Target`: loopback ports, secrets generated under
``<home>/secrets``, all state under ``$MODELGATE_HOME``. :mod:`modelgate_dev.stack` calls
:func:`stack_env_overrides`, :func:`procfile` and :func:`prepare` when the profile is selected.

What runs: PostgreSQL (``<home>/pg``; roles ``airflow``, ``mlflow``, ``control_owner`` and
``control_writer``, one database each for Airflow, MLflow and the control plane/audit log), Redis,
MLflow on PostgreSQL, Airflow with CeleryExecutor (api-server, scheduler, dag-processor, triggerer,
two Celery workers: ``default`` and ``gpu,default``), the router replicas and Prometheus with the
rules of ``deploy/prometheus/``, and the DAG-run exporter it scrapes (:mod:`modelgate_dev.production.dagruns`,
logged in to Airflow as the read-only ``monitor`` user).
"""

from __future__ import annotations

import logging
import re
import shlex
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from modelgate_dev.production import contract
from modelgate_dev.production.services import PgCluster, ensure_packages

if TYPE_CHECKING:
    from modelgate_dev.stack import StackConfig

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = REPO / "deploy" / "prometheus"
ROLES = ("airflow", "mlflow", "control_owner", "control_writer")
MONITOR_USER = "monitor"
"""Read-only Airflow user (``viewer``) of the DAG-run exporter (:mod:`modelgate_dev.production.dagruns`)."""
SCRAPE_SECONDS = 5
"""Scrape and rule evaluation interval of the native Prometheus (the compose file keeps 15 s): a demo's
guard trip shows as a firing alert within seconds."""


def ports(cfg: StackConfig) -> dict[str, int]:
    """The profile's extra loopback ports (from ``MODELGATE_{POSTGRES,REDIS,PROMETHEUS}_PORT``)."""
    from modelgate_dev.settings import get_dev_settings

    s = get_dev_settings()
    return {
        "postgres": s.postgres_port,
        "redis": s.redis_port,
        "prometheus": s.prometheus_port,
        "dagruns": s.dagruns_port,
    }


def _password(cfg: StackConfig, role: str) -> str:
    from modelgate_dev.stack import _secret

    return _secret(cfg.home / "secrets" / f"pg-{role.replace('_', '-')}")


def _fernet_key(cfg: StackConfig) -> str:
    from include.registry.audit_anchor import write_secret_file

    path = cfg.home / "secrets" / "airflow-fernet-key"
    if not path.exists():
        from cryptography.fernet import Fernet

        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_secret_file(path, Fernet.generate_key())
    return path.read_text().strip()


def target(cfg: StackConfig) -> contract.Target:
    """The native rendering target: loopback addresses, ``$MODELGATE_HOME`` paths, generated secrets."""
    from modelgate_dev.stack import _secret, router_connection, router_token

    p = ports(cfg)
    return contract.Target(
        postgres=f"127.0.0.1:{p['postgres']}",
        redis=f"127.0.0.1:{p['redis']}",
        mlflow=f"127.0.0.1:{cfg.mlflow_port}",
        airflow=f"127.0.0.1:{cfg.airflow_port}",
        router=f"127.0.0.1:{cfg.router_port}",
        state=str(cfg.home),
        events=str(cfg.home / "events"),
        router_state=str(cfg.home / "router"),
        artifacts=str(cfg.home / "mlartifacts"),
        code=str(REPO),
        auth_manager="airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
        secrets={
            "router_admin_token": router_token(cfg),
            "router_connection": router_connection(cfg),
            "fernet_key": _fernet_key(cfg),
            "jwt_secret": _secret(cfg.home / "secrets" / "jwt-secret"),
            "api_secret_key": _secret(cfg.home / "secrets" / "api-secret-key"),
            "pg_superuser": "postgres",
            "pg_superuser_password": _password(cfg, "postgres"),
            "airflow_db_user": "airflow",
            "airflow_db_password": _password(cfg, "airflow"),
            "mlflow_db_user": "mlflow",
            "mlflow_db_password": _password(cfg, "mlflow"),
            "control_db_user": "control_writer",
            "control_db_password": _password(cfg, "control_writer"),
        },
    )


def stack_env_overrides(cfg: StackConfig) -> dict[str, str]:
    """The environment the profile adds to the embedded stack's: every service's contract rendering.

    All processes of the stack share one environment; the services' variables do not overlap
    (``AIRFLOW_*``/``MODELGATE_*``, ``MLFLOW_*``, ``ROUTER_*``), so their union is each one's rendering.
    """
    t = target(cfg)
    env: dict[str, str] = {}
    for name in ("airflow-scheduler", "mlflow", "router"):
        env.update(contract.render(name, t))
    p = ports(cfg)
    env.update(
        {
            "MODELGATE_PROFILE": "production",
            "MODELGATE_POSTGRES_PORT": str(p["postgres"]),
            "MODELGATE_REDIS_PORT": str(p["redis"]),
            "MODELGATE_PROMETHEUS_PORT": str(p["prometheus"]),
            "MODELGATE_DAGRUNS_PORT": str(p["dagruns"]),
            # the DAG-run exporter's read-only identity (SimpleAuthManager's viewer role)
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"admin:admin,{MONITOR_USER}:viewer",
        }
    )
    add_monitor_password(cfg)
    return env


def monitor_password_file(cfg: StackConfig) -> Path:
    """The file holding the password of the read-only Airflow user the DAG-run exporter logs in as."""
    return cfg.home / "secrets" / "airflow-monitor-password"


def add_monitor_password(cfg: StackConfig) -> None:
    """Add the monitor user's password (generated once) to SimpleAuthManager's passwords file."""
    import json

    from modelgate_dev.stack import _secret

    password = _secret(monitor_password_file(cfg))
    passwords = cfg.home / "airflow" / "passwords.json"
    users = json.loads(passwords.read_text()) if passwords.exists() else {}
    if users.get(MONITOR_USER) != password:
        passwords.write_text(json.dumps({**users, MONITOR_USER: password}))
        passwords.chmod(0o600)


def owner_url(cfg: StackConfig) -> str:
    """URL of the control-plane database as its owner (runs the audit log's ``setup-postgres``)."""
    return (
        f"postgresql+psycopg://control_owner:{_password(cfg, 'control_owner')}"
        f"@127.0.0.1:{ports(cfg)['postgres']}/modelgate"
    )


def pg_cluster(cfg: StackConfig) -> PgCluster:
    return PgCluster(cfg.home / "pg", ports(cfg)["postgres"])


def prepare(cfg: StackConfig) -> None:
    """Install missing packages, start PostgreSQL with its roles and databases, write Prometheus' config.

    Idempotent: an existing cluster, role or database is kept (role passwords are set again).
    """
    ensure_packages()
    pg = pg_cluster(cfg)
    pg.init(_password(cfg, "postgres"))
    pg.start()
    for role in ROLES:
        pg.ensure_role(role, _password(cfg, role))
    pg.ensure_database("airflow", "airflow")
    pg.ensure_database("mlflow", "mlflow")
    pg.ensure_database("modelgate", "control_owner")
    pg.psql("GRANT CONNECT ON DATABASE modelgate TO control_writer")
    from include.registry.audit import setup_postgres

    setup_postgres(owner_url(cfg), "control_writer")
    write_prometheus_config(cfg)


def prometheus_config(cfg: StackConfig) -> dict[str, Any]:
    """``deploy/prometheus/prometheus.yml`` with the native targets (every router replica) and rules path."""
    doc: dict[str, Any] = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    doc["global"] = {"scrape_interval": f"{SCRAPE_SECONDS}s", "evaluation_interval": f"{SCRAPE_SECONDS}s"}
    doc["rule_files"] = [str(PROMETHEUS_DIR / r) for r in doc["rule_files"]]
    replicas = [f"127.0.0.1:{port}" for port in cfg.router_ports]
    for job in doc["scrape_configs"]:
        if job["job_name"] == "modelgate-router":
            job["static_configs"] = [{"targets": replicas}]
    # native only (compose does not run the exporter yet): modelgate_dag_runs for AirflowDagRunFailed
    doc["scrape_configs"].append(
        {
            "job_name": "modelgate-dagruns",
            "static_configs": [{"targets": [f"127.0.0.1:{ports(cfg)['dagruns']}"]}],
        }
    )
    return doc


def write_prometheus_config(cfg: StackConfig) -> Path:
    path = cfg.home / "prometheus" / "prometheus.yml"
    (cfg.home / "prometheus" / "data").mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(prometheus_config(cfg), sort_keys=False))
    return path


def procfile(cfg: StackConfig, lines: list[str]) -> list[str]:
    """The embedded Procfile's lines turned into the production topology's.

    MLflow reads its backend store and artifact root from the environment (the contract's
    ``MLFLOW_BACKEND_STORE_URI``/``MLFLOW_ARTIFACTS_DESTINATION``) instead of the SQLite flags; Redis
    and Prometheus are added. The Celery workers run outside honcho (:mod:`modelgate_dev.production.workers`).
    """
    out = []
    for line in lines:
        if line.startswith("mlflow:"):
            line = re.sub(r"\s--(backend-store-uri|artifacts-destination)\s+\S+", "", line)
        out.append(line)
    p = ports(cfg)
    home = shlex.quote(str(cfg.home))
    out.append(
        f"redis: exec redis-server --bind 127.0.0.1 --port {p['redis']} --save '' --appendonly no "
        f"--dir {home}/redis"
    )
    out.append(
        f"prometheus: exec prometheus --config.file={home}/prometheus/prometheus.yml "
        f"--storage.tsdb.path={home}/prometheus/data --web.listen-address=127.0.0.1:{p['prometheus']}"
    )
    out.append(
        f"dagruns: exec python -m modelgate_dev.production.dagruns --airflow {cfg.airflow_url} "
        f"--username {MONITOR_USER} --password-file {shlex.quote(str(monitor_password_file(cfg)))} "
        f"--port {p['dagruns']} --interval {SCRAPE_SECONDS}"
    )
    (cfg.home / "redis").mkdir(parents=True, exist_ok=True)
    return out
