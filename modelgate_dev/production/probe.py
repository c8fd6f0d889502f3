"""What the running production profile reports about itself, read back from the services (not from its settings)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import TYPE_CHECKING, Any

from modelgate_dev.production.services import redis_ping

if TYPE_CHECKING:
    from modelgate_dev.stack import StackConfig


def _json(url: str, timeout: float = 5.0) -> Any:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:  # noqa: S310 - loopback URLs built here
            return json.loads(r.read())
    except (urllib.error.URLError, OSError, ValueError):
        return None


def prometheus_url(cfg: StackConfig) -> str:
    from modelgate_dev.production.profile import ports

    return f"http://127.0.0.1:{ports(cfg)['prometheus']}"


def health(cfg: StackConfig) -> dict[str, bool]:
    """Health of the profile's own services: Celery workers and PostgreSQL (process alive), Redis (PING),
    Prometheus (answers its API), the DAG-run exporter (has read Airflow's runs)."""
    from modelgate_dev.production.profile import pg_cluster, ports
    from modelgate_dev.production.workers import WORKERS, label, worker_pid

    ready = _json(f"{prometheus_url(cfg)}/api/v1/status/runtimeinfo")
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{ports(cfg)['dagruns']}/metrics", timeout=5) as r:
            dagruns = b"modelgate_dag_runs_read_ok 1.0" in r.read()
    except (urllib.error.URLError, OSError):
        dagruns = False
    return {
        **{label(w): worker_pid(cfg, w) is not None for w in WORKERS},
        "postgres": pg_cluster(cfg).pid() is not None,
        "redis": redis_ping(ports(cfg)["redis"]),
        "prometheus": isinstance(ready, dict) and ready.get("status") == "success",
        "dagruns-exporter": dagruns,
    }


def prometheus_targets(cfg: StackConfig) -> list[dict[str, str]]:
    """Prometheus' active targets: job, instance and health (``up``/``down``/``unknown``)."""
    doc = _json(f"{prometheus_url(cfg)}/api/v1/targets?state=active") or {}
    return [
        {"job": t["labels"]["job"], "instance": t["labels"]["instance"], "health": t["health"]}
        for t in doc.get("data", {}).get("activeTargets", [])
    ]


def prometheus_alerts(cfg: StackConfig) -> list[dict[str, Any]]:
    """Alerts Prometheus holds now (pending or firing) with their labels."""
    doc = _json(f"{prometheus_url(cfg)}/api/v1/alerts") or {}
    return [
        {"name": a["labels"].get("alertname"), "state": a["state"], "labels": a["labels"]}
        for a in doc.get("data", {}).get("alerts", [])
    ]
