"""The DAG-run exporter: a failed run of a real DAG shows in ``modelgate_dag_runs`` and fires ``AirflowDagRunFailed``.

A real Airflow api-server (the tests' metadata DB) is read by the exporter as a read-only ``viewer``
user; a probe DAG is synced to the DB (its series appears at 0), then run with ``dag.test()`` and fails;
Debian's Prometheus scrapes the exporter every second with ``deploy/prometheus``'s rules.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import httpx
import pytest
import yaml
from support import REPO, free_port, stop, wait_http
from support_airflow import ensure_airflow_db
from support_hitl import api_server_process

RULES = REPO / "deploy" / "prometheus" / "modelgate.rules.yml"
DAG_ID = "dagrun_exporter_probe"
PROBE = f'''
from airflow.sdk import DAG, task

with DAG("{DAG_ID}", schedule=None, catchup=False):

    @task
    def fail_on_purpose() -> None:
        raise RuntimeError("planned failure")

    fail_on_purpose()
'''
MONITOR = {"monitor": "monitor-test-password"}


def _sync_probe(folder: Path):  # type: ignore[no-untyped-def]
    from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db
    from airflow.models.dagbundle import DagBundleModel
    from airflow.utils.session import create_session

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "probe.py").write_text(PROBE)
    with create_session() as session:
        session.merge(DagBundleModel(name="modelgate_tests"))
        session.commit()
    bag = DagBag(dag_folder=str(folder / "probe.py"))
    assert not bag.import_errors, bag.import_errors
    sync_bag_to_db(bag, bundle_name="modelgate_tests", bundle_version=None)
    return bag.get_dag(DAG_ID)


def _series(port: int) -> dict[str, float]:
    """``modelgate_dag_runs`` samples of the probe DAG and the read flag, from the exporter's /metrics."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    out = {}
    for line in text.splitlines():
        if line.startswith(f'modelgate_dag_runs{{dag_id="{DAG_ID}"') or line.startswith(
            "modelgate_dag_runs_read_ok"
        ):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def _wait(pred, timeout: float, what: str):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        got = pred()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} within {timeout:.0f}s")
        time.sleep(0.5)


def _samples(port: int, series: str) -> int:
    """Samples Prometheus holds of ``series`` over the last minute (0 when it answers nothing yet)."""
    query = urllib.parse.urlencode({"query": f"count_over_time({series}[1m])"})
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/query?{query}", timeout=5) as r:
            result = json.loads(r.read())["data"]["result"]
    except OSError:
        return 0
    return int(float(result[0]["value"][1])) if result else 0


def _alerts(port: int) -> list[dict[str, object]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/alerts", timeout=5) as r:
            return [
                a
                for a in json.loads(r.read())["data"]["alerts"]
                if a["labels"]["alertname"] == "AirflowDagRunFailed"
            ]
    except OSError:
        return []


@pytest.mark.timeout(600)
def test_a_failed_run_appears_in_the_series_and_fires_the_alert(tmp_path: Path) -> None:
    exe = shutil.which("prometheus")
    if exe is None:
        pytest.fail("prometheus is not installed: apt-get install -y prometheus (.ci/run does this)")
    ensure_airflow_db()
    dag = _sync_probe(tmp_path / "dags")
    (tmp_path / "api").mkdir()
    with api_server_process(tmp_path / "api", viewers=MONITOR) as srv:
        srv.wait_ready()
        # the exporter's identity is read-only: Airflow refuses it a run
        with httpx.Client(base_url=srv.url, timeout=30) as c:
            token = c.post("/auth/token", json={"username": "monitor", "password": MONITOR["monitor"]}).json()
            c.headers["Authorization"] = f"Bearer {token['access_token']}"
            assert c.post(f"/api/v2/dags/{DAG_ID}/dagRuns", json={"logical_date": None}).status_code == 403
        pw = tmp_path / "monitor-password"
        pw.write_text(MONITOR["monitor"] + "\n")
        port, prom_port = free_port(), free_port()
        exporter = subprocess.Popen(
            [sys.executable, "-m", "modelgate_dev.production.dagruns", "--airflow", srv.url, "--username", "monitor",
             "--password-file", str(pw), "--port", str(port), "--interval", "1"],
            cwd=REPO, stdout=(tmp_path / "exporter.log").open("wb"), stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(RULES)],
            "scrape_configs": [
                {"job_name": "modelgate-dagruns", "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}
            ],
        }
        (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
        prom = subprocess.Popen(
            [exe, f"--config.file={tmp_path / 'prometheus.yml'}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{prom_port}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        key = f'modelgate_dag_runs{{dag_id="{DAG_ID}",state="failed"}}'
        try:
            wait_http(f"http://127.0.0.1:{port}/metrics", timeout=60, proc=exporter)
            # the synced DAG has a series at 0 before any run (so the alert's delta sees the first failure)
            before = _wait(
                lambda: (s := _series(port)).get(key) is not None and s, 60, "no series for the probe DAG"
            )
            assert before[key] == 0 and before["modelgate_dag_runs_read_ok"] == 1, before
            wait_http(f"http://127.0.0.1:{prom_port}/-/ready", timeout=60, proc=prom)
            # Prometheus must hold scrapes of the 0 before the run: a series whose first sample is already 1
            # has no increase for ``delta`` to see (a fixed sleep here was sometimes too short)
            _wait(lambda: _samples(prom_port, key) >= 2, 60, "Prometheus has not scraped the 0 twice")
            assert not _alerts(prom_port)
            run = dag.test()
            assert str(run.state) == "failed", run.state
            after = _wait(lambda: _series(port).get(key) == 1, 60, "the failed run is not counted")
            assert after
            firing = _wait(
                lambda: [a for a in _alerts(prom_port) if a["state"] == "firing"],
                60,
                "AirflowDagRunFailed did not fire",
            )
            assert firing[0]["labels"]["dag_id"] == DAG_ID, firing  # type: ignore[index]
        finally:
            prom.terminate()
            prom.wait(timeout=30)
            stop(exporter)
    assert "Traceback" not in (tmp_path / "exporter.log").read_text()


def test_the_production_profile_runs_the_exporter_as_the_read_only_user(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from modelgate_dev.production.profile import procfile, prometheus_config
    from modelgate_dev.stack import StackConfig, stack_env

    monkeypatch.setenv("MODELGATE_PROFILE", "production")
    monkeypatch.setenv("MODELGATE_HOME", str(tmp_path))
    monkeypatch.setenv("MODELGATE_DAGRUNS_PORT", "19123")
    cfg = StackConfig.from_env()
    env = stack_env(cfg)
    assert env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"] == "admin:admin,monitor:viewer"
    secret = tmp_path / "secrets" / "airflow-monitor-password"
    assert secret.stat().st_mode & 0o777 == 0o600
    users = json.loads((tmp_path / "airflow" / "passwords.json").read_text())
    assert users["monitor"] == secret.read_text().strip() and users["admin"] != users["monitor"]
    [line] = [x for x in procfile(cfg, []) if x.startswith("dagruns:")]
    assert f"--password-file {secret}" in line and "--username monitor" in line and "--port 19123" in line
    assert users["monitor"] not in line
    jobs = {j["job_name"]: j["static_configs"][0]["targets"] for j in prometheus_config(cfg)["scrape_configs"]}
    assert jobs["modelgate-dagruns"] == ["127.0.0.1:19123"]
    assert len(jobs["modelgate-router"]) == cfg.router_replicas
