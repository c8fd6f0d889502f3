"""The production profile for real: a Celery worker killed mid-task, the task retried on the other worker.

Starts ``MODELGATE_PROFILE=production`` (its own PostgreSQL, Redis, MLflow, Airflow with CeleryExecutor
and two workers, router, Prometheus) on free loopback ports in a temporary home, with one extra DAG
bundle holding a probe DAG. Run by ``make test-production`` (not by ``make test``: it takes minutes).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support import REPO, free_port

PROBE_DAG = """
from __future__ import annotations

import os
import re
import time
from datetime import timedelta
from pathlib import Path

import pendulum
from airflow.sdk import dag, get_current_context, task


@dag(dag_id="failover_probe", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False)
def failover_probe():
    @task(retries=2, retry_delay=timedelta(seconds=1), queue="default")
    def hold(marker_dir: str) -> int:
        ti = get_current_context()["ti"]
        ancestors, pid = [], os.getpid()
        while pid > 1:  # the task's process and every parent up to init: one of them is its worker
            ancestors.append(pid)
            pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        record = {"try": ti.try_number, "pid": os.getpid(), "ancestors": ancestors}
        Path(marker_dir, f"try-{ti.try_number}.json").write_text(__import__("json").dumps(record))
        if ti.try_number == 1:
            time.sleep(600)  # killed with its worker long before this ends
        return ti.try_number

    hold("{marker_dir}")


failover_probe()
"""


def _stack(env: dict[str, str], command: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "modelgate_dev.stack", command, "--timeout", "600"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


@pytest.fixture(scope="module")
def production(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    # not under pytest's tmp folder (0700): the PostgreSQL server runs as the postgres user below it
    home = Path(tempfile.mkdtemp(prefix="modelgate-production-"))
    home.chmod(0o755)
    bundle, markers = home / "probe-dags", home / "markers"
    bundle.mkdir()
    markers.mkdir(mode=0o777)
    (bundle / "failover_probe.py").write_text(PROBE_DAG.replace("{marker_dir}", str(markers)))
    bundles = [
        {"name": "dags-folder", "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle", "kwargs": {}},
        {"name": "probe", "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
         "kwargs": {"path": str(bundle), "refresh_interval": 5}},
    ]  # fmt: skip
    env = {
        **os.environ,
        "MODELGATE_PROFILE": "production",
        "MODELGATE_HOME": str(home),
        "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST": json.dumps(bundles),
        **{f"MODELGATE_{name}_PORT": str(free_port())
           for name in ("MLFLOW", "AIRFLOW", "ROUTER", "POSTGRES", "REDIS", "PROMETHEUS", "DAGRUNS")},
    }  # fmt: skip
    started = _stack(env, "up")
    try:
        assert started.returncode == 0, started.stdout[-3000:] + started.stderr[-3000:]
        yield {"env": env, "home": home, "markers": markers}
    finally:
        stopped = _stack(env, "down", timeout=180)
        assert stopped.returncode == 0, stopped.stderr
        shutil.rmtree(home, ignore_errors=True)


def _client(env: dict[str, str]) -> Any:
    from modelgate_dev.cli import AirflowClient

    password = (Path(env["MODELGATE_HOME"]) / "secrets" / "airflow-admin-password").read_text().strip()
    return AirflowClient(f"http://127.0.0.1:{env['MODELGATE_AIRFLOW_PORT']}", "admin", password)


def _worker_pgids(home: Path) -> dict[str, int]:
    return {p.stem: int(p.read_text()) for p in sorted((home / "workers").glob("*.pid"))}


def _wait(predicate: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(1.0)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")


def test_every_service_of_the_topology_is_healthy(production: dict[str, Any]) -> None:
    res = _stack(production["env"], "status", timeout=120)
    state = json.loads(res.stdout.strip().splitlines()[-1])
    expected = {
        "mlflow",
        "airflow-api",
        "scheduler",
        "worker",
        "workergpu",
        "postgres",
        "redis",
        "prometheus",
    }
    routers = {k for k in state if re.fullmatch(r"router\d*", k)}
    # the production profile runs several router replicas (router0, router1, ...), each checked on its own
    assert len(routers) >= 2, state
    expected |= routers
    assert expected <= set(state)
    assert all(state[k] for k in expected), state


def test_a_task_of_a_killed_worker_is_retried_on_the_other_worker(production: dict[str, Any]) -> None:
    env, home, markers = production["env"], production["home"], production["markers"]
    client = _client(env)
    client.wait_for_dag("failover_probe", timeout=240)
    client.unpause("failover_probe")
    run_id = client.trigger("failover_probe", {})
    first = _wait(lambda: (markers / "try-1.json").is_file() and json.loads((markers / "try-1.json").read_text()),
                  300, "the first try to start")  # fmt: skip
    workers = _worker_pgids(home)
    assert len(workers) == 2, workers
    victim = next(name for name, pid in workers.items() if pid in first["ancestors"])
    # the worker (its process group) and the task it runs, mid-task (the task runs in a session of its own)
    os.killpg(workers[victim], signal.SIGKILL)
    for pid in first["ancestors"][: first["ancestors"].index(workers[victim])]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)

    second = _wait(lambda: (markers / "try-2.json").is_file() and json.loads((markers / "try-2.json").read_text()),
                   400, "the retry to start")  # fmt: skip
    survivor = next(name for name in workers if name != victim)
    assert workers[survivor] in second["ancestors"], (second, workers)
    state = _wait(lambda: client.run_state("failover_probe", run_id) in {"success", "failed"} and
                  client.run_state("failover_probe", run_id), 300, "the run to finish")  # fmt: skip
    assert state == "success"
