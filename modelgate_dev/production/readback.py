"""The backends a running stack actually uses, read back from its services for the demo's ``summary.json``.

Nothing here repeats the configuration: the executor is what Airflow's scheduler job recorded, the
database dialects are those of the databases holding Airflow's jobs and MLflow's registered models
(checked against MLflow's REST answer), replicas are those answering readiness, targets and alerts
are what Prometheus reports.
"""

from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from modelgate_dev.stack import StackConfig

log = logging.getLogger(__name__)


def _json(url: str, timeout: float = 5.0, headers: dict[str, str] | None = None) -> Any:
    try:
        req = urllib.request.Request(url, headers=headers or {})  # noqa: S310 - loopback URLs built here
        with urllib.request.urlopen(req, timeout=timeout) as r:  # noqa: S310
            return json.loads(r.read())
    except (urllib.error.URLError, OSError, ValueError):
        return None


def _query(url: str, sql: str) -> tuple[str, list[tuple[Any, ...]]]:
    """Run one read-only statement; return the engine's dialect name and the rows."""
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return engine.dialect.name, [tuple(r) for r in conn.execute(sa.text(sql))]
    finally:
        engine.dispose()


def celery_workers(env: dict[str, str]) -> dict[str, list[str]]:
    """Workers answering through the broker, with the queues each consumes (Celery's ``inspect``)."""
    import subprocess
    import sys

    code = (
        "import json; from airflow.providers.celery.executors.celery_executor import app; "
        "q = app.control.inspect(timeout=5).active_queues() or {}; "
        "print(json.dumps({w: sorted(x['name'] for x in qs) for w, qs in q.items()}))"
    )
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    try:
        return dict(json.loads(res.stdout.strip().splitlines()[-1]))
    except (ValueError, IndexError):
        log.warning("celery inspect failed: %s", res.stderr[-500:])
        return {}


def airflow_backend(env: dict[str, str]) -> dict[str, Any]:
    """Dialect of the metadata database, tasks that finished through Celery, workers and their queues.

    Airflow 3 leaves ``job.executor_class`` empty; the executor shows in what it left behind: the
    Celery result backend's rows (``celery_taskmeta`` in the metadata database) for the tasks it ran.
    """
    url = env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    dialect, rows = _query(
        url,
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'celery_taskmeta'",
    )
    celery_done = 0
    if rows and rows[0][0]:
        celery_done = int(_query(url, "SELECT count(*) FROM celery_taskmeta WHERE status = 'SUCCESS'")[1][0][0])
    _, done = _query(
        url, "SELECT queue, count(*) FROM task_instance WHERE state = 'success' GROUP BY queue ORDER BY queue"
    )
    return {
        "executor": "CeleryExecutor" if celery_done else None,
        "database": dialect,
        "celery_tasks_succeeded": celery_done,
        "succeeded_tasks_by_queue": {q: n for q, n in done},
        "celery_workers": celery_workers(env),
    }


def mlflow_backend(env: dict[str, str], mlflow_url: str) -> dict[str, Any]:
    """Dialect of the database holding the registered models MLflow's REST API lists (they must agree).

    MLflow runs its basic-auth app: the listing is read as the ``admin`` user (who sees every model).
    """
    from pathlib import Path

    from include.registry.credentials import read_identity

    admin = read_identity(Path(env["MODELGATE_SECRETS_DIR"]), "admin")
    dialect, rows = _query(env["MLFLOW_BACKEND_STORE_URI"], "SELECT name FROM registered_models ORDER BY name")
    listed = _json(f"{mlflow_url}/api/2.0/mlflow/registered-models/search?max_results=1000",
                   headers={"Authorization": admin.authorization()}) or {}  # fmt: skip
    names = sorted(m["name"] for m in listed.get("registered_models", []))
    return {"store": dialect, "registered_models": names, "store_matches_api": names == [r[0] for r in rows]}


def routers(cfg: StackConfig) -> dict[str, Any]:
    """Replicas answering readiness, with the routes generation each reports."""
    ready = {}
    for url in cfg.router_urls:
        body = _json(f"{url}/v2/health/ready")
        if isinstance(body, dict):
            ready[url] = body.get("generation")
    return {"replicas_ready": len(ready), "generations": ready}


def prometheus(cfg: StackConfig, alert_word: str | None = None, timeout: float = 90.0) -> dict[str, Any]:
    """Targets up, and alerts that have fired (``ALERTS`` over the last hour, so a resolved one still counts).

    With ``alert_word``, waits up to ``timeout`` seconds for an alert whose name contains it to fire.
    """
    from modelgate_dev.production.probe import prometheus_alerts, prometheus_targets, prometheus_url

    base = prometheus_url(cfg)
    deadline = time.monotonic() + timeout
    while True:
        q = urllib.parse.quote('max by (alertname) (max_over_time(ALERTS{alertstate="firing"}[1h]))')
        doc = _json(f"{base}/api/v1/query?query={q}") or {}
        fired = sorted(r["metric"]["alertname"] for r in doc.get("data", {}).get("result", []))
        if alert_word is None or any(alert_word in n for n in fired) or time.monotonic() > deadline:
            break
        time.sleep(2.0)
    targets = prometheus_targets(cfg)
    return {
        "targets": targets,
        "targets_up": sum(t["health"] == "up" for t in targets),
        "alerts_fired": fired,
        "alerts_now": prometheus_alerts(cfg),
    }


def profile_summary(cfg: StackConfig, env: dict[str, str], scenario: str) -> dict[str, Any]:
    """The ``profile`` entry of the demo summary: the profile and the backends read back from the services."""
    from modelgate_dev.stack import production

    if not production(cfg):
        return {"name": "embedded", "routers": routers(cfg)}
    return {
        "name": "production",
        "airflow": airflow_backend(env),
        "mlflow": mlflow_backend(env, cfg.mlflow_url),
        "routers": routers(cfg),
        "prometheus": prometheus(cfg, "Guard" if scenario == "bad-canary" else None),
    }
