"""The production profile's Celery workers: each its own process group, outside honcho, stopped by pid.

A worker that dies does not take the rest of the stack with it (honcho stops every process when one
exits), so a worker can be killed mid-task and its task retried on the other one. More workers are
more entries in :data:`WORKERS` (or more machines running ``airflow celery worker``), not code.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from modelgate_dev.production import contract

if TYPE_CHECKING:
    from modelgate_dev.stack import StackConfig

WORKERS = ("airflow-worker", "airflow-worker-gpu")
"""Services of the contract run as Celery workers; their queues come from the contract."""


def label(service: str) -> str:
    """Short name of a worker (``worker``, ``workergpu``): its Celery hostname prefix and pid file name."""
    return service.removeprefix("airflow-").replace("-", "")


def pidfile(cfg: StackConfig, service: str) -> Path:
    return cfg.home / "workers" / f"{label(service)}.pid"


def worker_pid(cfg: StackConfig, service: str) -> int | None:
    """The worker's pid (its process group id) while it runs."""
    try:
        pid = int(pidfile(cfg, service).read_text().strip())
        os.killpg(pid, 0)
    except (FileNotFoundError, ValueError, ProcessLookupError, PermissionError):
        return None
    return pid


def start_workers(cfg: StackConfig, env: dict[str, str]) -> dict[str, int]:
    """Start every worker that is not running; return the pids of all."""
    airflow = str(Path(sys.executable).parent / "airflow")
    pids = {}
    for i, service in enumerate(WORKERS):
        pid = worker_pid(cfg, service)
        if pid is None:
            pidfile(cfg, service).parent.mkdir(parents=True, exist_ok=True)
            log = open(cfg.home / "workers" / f"{label(service)}.log", "ab")
            proc = subprocess.Popen(
                [airflow, "celery", "worker", "--queues", ",".join(contract.SERVICES[service].queues),
                 "--concurrency", "2", "--celery-hostname", f"{label(service)}@%h"],
                # each worker serves its task logs on its own port
                env={**env, "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(cfg.airflow_port + 1 + i)},
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip
            pidfile(cfg, service).write_text(str(proc.pid))
            pid = proc.pid
        pids[service] = pid
    return pids


def stop_workers(cfg: StackConfig, timeout: float = 30.0) -> list[str]:
    """SIGTERM each worker's process group (warm shutdown), SIGKILL after ``timeout``; return those stopped."""
    stopped = []
    for service in WORKERS:
        pid = worker_pid(cfg, service)
        if pid is None:
            pidfile(cfg, service).unlink(missing_ok=True)
            continue
        os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and worker_pid(cfg, service) is not None:
            time.sleep(0.3)
        if worker_pid(cfg, service) is not None:
            os.killpg(pid, signal.SIGKILL)
        pidfile(cfg, service).unlink(missing_ok=True)
        stopped.append(service)
    return stopped
