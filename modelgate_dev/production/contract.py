"""The one configuration contract of the production topology, rendered for compose and for the native profile.

Each service of the production topology (``docker-compose.yaml`` and ``MODELGATE_PROFILE=production``)
is listed here once: which component's settings it reads, its environment as templates, and the
paths it uses. :func:`render` fills the templates for a :class:`Target`: :data:`COMPOSE` (service
host names, secrets as ``${VAR:?set VAR}``) or a native target built by
:mod:`modelgate_dev.production.profile` (loopback ports, generated secrets, ``$MODELGATE_HOME``).
``tests/test_compose.py`` checks that the compose file is exactly the compose rendering and that
every variable is one the code declares (the settings classes listed in :data:`COMPONENTS`).
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from dataclasses import dataclass, field

# Settings classes (dotted paths) declaring every variable a component reads. ``router`` is
# importable with ``serving_images/router`` on ``sys.path`` (the router image's working directory).
COMPONENTS: dict[str, tuple[str, ...]] = {
    "airflow": (
        "include.config:Settings",
        "include.batch.settings:BatchRunSettings",
        "include.batch.pods:BatchPodSettings",
    ),
    "router": ("router.settings:RouterSettings",),
    "batch": ("include.config:Settings",),
    "tools": ("modelgate_dev.settings:DevSettings",),
    # a click command: its options' ``envvar`` names
    "mlflow": ("mlflow.cli:server",),
}

# Variables read by programs that are not ours, with where they are documented. Compose may set
# these for the service running that program.
FOREIGN: dict[str, frozenset[str]] = {
    # https://hub.docker.com/_/postgres "Environment Variables"
    "postgres-image": frozenset({"POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB", "PGDATA"}),
    # libpq environment variables (PostgreSQL docs, 34.15) read by psql
    "libpq": frozenset({"PGHOST", "PGPORT", "PGUSER", "PGPASSWORD", "PGDATABASE"}),
    # the MLflow basic-auth app (mlflow/server/auth/__init__.py, mlflow/server/auth/config.py)
    "mlflow-auth": frozenset({"MLFLOW_AUTH_CONFIG_PATH", "MLFLOW_FLASK_SERVER_SECRET_KEY"}),
    "python": frozenset({"PYTHONPATH"}),
}


@dataclass(frozen=True)
class Service:
    """One service of the topology."""

    component: str
    """Key of :data:`COMPONENTS` or :data:`FOREIGN` naming who reads the environment."""

    env: Mapping[str, str]
    """Environment as templates: ``{field}`` placeholders filled from a :class:`Target`."""

    also_reads: tuple[str, ...] = ()
    """Further keys of :data:`FOREIGN` this service's programs read."""

    queues: tuple[str, ...] = ()
    """Celery queues of a worker (empty: not a worker)."""


BATCH_QUEUE = "gpu"
"""Celery queue of the batch DAG's scoring tasks (``dags/nightly_batch_inference.py``)."""


# Connections: AIRFLOW_CONN_<ID> for the hooks' default connection ids (plugins/*_hook.py CONN_ID).
_AIRFLOW_ENV: dict[str, str] = {
    "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
    "AIRFLOW__CORE__AUTH_MANAGER": "{auth_manager}",
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": "postgresql+psycopg://{airflow_db_user}:{airflow_db_password}@{postgres}/airflow",
    # Airflow derives asyncpg for postgresql URLs; the lock has psycopg 3, which is async too
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC": "postgresql+psycopg_async://{airflow_db_user}:{airflow_db_password}@{postgres}/airflow",
    "AIRFLOW__CELERY__BROKER_URL": "redis://{redis}/0",
    "AIRFLOW__CELERY__RESULT_BACKEND": "db+postgresql+psycopg://{airflow_db_user}:{airflow_db_password}@{postgres}/airflow",
    "AIRFLOW__CORE__FERNET_KEY": "{fernet_key}",
    "AIRFLOW__API_AUTH__JWT_SECRET": "{jwt_secret}",
    "AIRFLOW__API__SECRET_KEY": "{api_secret_key}",
    "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": "http://{airflow}/execution/",
    "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
    "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "True",
    # a task whose worker died is failed (and retried on another worker) after 60 s without heartbeat
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "60",
    "AIRFLOW_CONN_MODELGATE_MLFLOW": "http://{mlflow}",
    "AIRFLOW_CONN_MODELGATE_ROUTER": "{router_connection}",
    "MODELGATE_HOME": "{state}",
    "MODELGATE_TRACKING_URI": "http://{mlflow}",
    "MODELGATE_ROUTER_URL": "http://{router}",
    "MODELGATE_AUDIT_DB_URL": "postgresql+psycopg://{control_db_user}:{control_db_password}@{postgres}/modelgate",
    "MODELGATE_EVENTS_ROOT": "{events}",
    "MODELGATE_BATCH_QUEUE": BATCH_QUEUE,
    # the airflow and batch MLflow identities' password files (compose: its secrets; native: "" = <home>/secrets)
    "MODELGATE_MLFLOW_IDENTITIES_DIR": "{mlflow_identities}",
    "PYTHONPATH": "{code}",
}

SERVICES: dict[str, Service] = {
    "postgres": Service(
        "postgres-image",
        {"POSTGRES_USER": "{pg_superuser}", "POSTGRES_PASSWORD": "{pg_superuser_password}", "POSTGRES_DB": "airflow"},
    ),
    "mlflow": Service(
        "mlflow",
        {
            "MLFLOW_BACKEND_STORE_URI": "postgresql+psycopg://{mlflow_db_user}:{mlflow_db_password}@{postgres}/mlflow",
            "MLFLOW_ARTIFACTS_DESTINATION": "{artifacts}",
        },
    ),
    "airflow-apiserver": Service("airflow", _AIRFLOW_ENV),
    "airflow-scheduler": Service("airflow", _AIRFLOW_ENV),
    "airflow-dag-processor": Service("airflow", _AIRFLOW_ENV),
    "airflow-triggerer": Service("airflow", _AIRFLOW_ENV),
    "airflow-worker": Service("airflow", _AIRFLOW_ENV, queues=("default",)),
    # takes default tasks too: with two workers, either one's tasks survive the other's death
    "airflow-worker-gpu": Service("airflow", _AIRFLOW_ENV, queues=(BATCH_QUEUE, "default")),
    "router": Service(
        "router",
        {
            "ROUTER_ADMIN_TOKEN": "{router_admin_token}",
            "ROUTER_TRACKING_URI": "http://{mlflow}",
            "ROUTER_STATE_DIR": "{router_state}",
            "ROUTER_EVENTS_ROOT": "{events}",
            # the control plane's desired routes, which every replica follows (issue 12)
            "ROUTER_STORE_URL": "postgresql+psycopg://{control_db_user}:{control_db_password}@{postgres}/modelgate",
        },
    ),
}
"""Services whose environment the contract fixes. One-shot init services and Redis/Prometheus
(configured by their command line alone) are checked by the compose test's other rules."""

@dataclass(frozen=True)
class Target:
    """Values filling the templates of :data:`SERVICES` for one way of running the topology."""

    postgres: str
    redis: str
    mlflow: str
    airflow: str
    router: str
    state: str
    events: str
    router_state: str
    artifacts: str
    code: str
    auth_manager: str
    secrets: Mapping[str, str] = field(default_factory=dict)
    """``router_admin_token``, ``router_connection`` (URI of the ``modelgate_router`` connection),
    ``fernet_key``, ``jwt_secret``, ``api_secret_key``, database roles and passwords."""
    mlflow_identities: str = ""
    """Folder of the ``mlflow-<user>-password`` files (empty: the secrets folder under ``state``)."""

    def values(self) -> dict[str, str]:
        """Return every placeholder's value."""
        fixed = {k: v for k, v in self.__dict__.items() if isinstance(v, str)}
        return {**fixed, **self.secrets}


def _secret_ref(name: str) -> str:
    return f"${{{name}:?set {name}}}"


_PG_USER = "${POSTGRES_USER:-modelgate}"
_PG_PASSWORD = _secret_ref("POSTGRES_PASSWORD")

COMPOSE = Target(
    postgres="postgres:5432",
    redis="redis:6379",
    mlflow="mlflow:5000",
    airflow="airflow-apiserver:8080",
    router="router:8500",
    state="/opt/airflow/modelgate",
    events="/events",
    router_state="/var/lib/router",
    artifacts="/mlartifacts",
    code="/opt/airflow",
    auth_manager="airflow.providers.fab.auth_manager.fab_auth_manager.FabAuthManager",
    mlflow_identities="/run/secrets",
    secrets={
        "router_admin_token": _secret_ref("ROUTER_ADMIN_TOKEN"),
        "router_connection": f"http://admin:{_secret_ref('ROUTER_ADMIN_TOKEN')}@router:8500",
        "fernet_key": _secret_ref("AIRFLOW_FERNET_KEY"),
        "jwt_secret": _secret_ref("AIRFLOW_JWT_SECRET"),
        "api_secret_key": _secret_ref("AIRFLOW_API_SECRET_KEY"),
        "pg_superuser": _PG_USER,
        "pg_superuser_password": _PG_PASSWORD,
        "airflow_db_user": _PG_USER,
        "airflow_db_password": _PG_PASSWORD,
        "mlflow_db_user": _PG_USER,
        "mlflow_db_password": _PG_PASSWORD,
        "control_db_user": _PG_USER,
        "control_db_password": _PG_PASSWORD,
    },
)
"""The compose rendering: service host names on the compose network, secrets from the environment."""


def placeholders(template: str) -> set[str]:
    """Return the ``{field}`` names of a template."""
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def render(service: str, target: Target) -> dict[str, str]:
    """Return the environment of ``service`` for ``target``.

    Raises:
        KeyError: unknown service, or a template names a value the target lacks.
    """
    values = target.values()
    out = {}
    for key, template in SERVICES[service].env.items():
        missing = placeholders(template) - set(values)
        if missing:
            raise KeyError(f"{service}.{key} needs {sorted(missing)}, which the target does not give")
        out[key] = template.format(**values)
    return out


IMAGE_PATHS: dict[str, tuple[str, ...]] = {
    # the official Airflow image: AIRFLOW_HOME=/opt/airflow, dags_folder, plugins_folder and
    # base_log_folder default below it
    "modelgate/airflow": ("/opt/airflow/dags", "/opt/airflow/plugins", "/opt/airflow/logs"),
    # the postgres image's PGDATA default
    "postgres": ("/var/lib/postgresql/data",),
    # the basic-auth users database named by the image's /etc/mlflow/basic_auth.ini (deploy/mlflow)
    "modelgate/mlflow": ("/var/lib/mlflow-auth",),
}
"""Paths an image's program reads by default, keyed by image name without tag."""
