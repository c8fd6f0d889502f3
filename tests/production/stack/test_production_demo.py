"""``MODELGATE_PROFILE=production make demo`` (good scenario): the demo passes on the production topology and
its summary records the backends read back from the running services. Run by ``make test-production``.
Then, on the same stack, ``SCENARIO=bad-canary``: the guard cuts the slow copy and the Guard alert fires
in the production Prometheus, recorded in the summary.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support import REPO, free_port

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def production_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    # not under pytest's tmp folder (0700): the PostgreSQL server runs as the postgres user below it
    home = Path(tempfile.mkdtemp(prefix="modelgate-production-demo-"))
    home.chmod(0o755)
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "MLFLOW", "MODELGATE", "ROUTER"))
    }
    env.update(
        MODELGATE_PROFILE="production",
        MODELGATE_HOME=str(home),
        **{f"MODELGATE_{n}_PORT": str(free_port()) for n in ("MLFLOW", "AIRFLOW", "ROUTER", "POSTGRES", "REDIS",
                                                                "PROMETHEUS", "DAGRUNS")},
    )  # fmt: skip
    try:
        yield env
    finally:
        res = subprocess.run([sys.executable, "-m", "modelgate_dev.stack", "down"], cwd=REPO, env=env,
                             capture_output=True, text=True, timeout=180)  # fmt: skip
        shutil.rmtree(home, ignore_errors=True)
        assert "PostgreSQL stopped" in res.stdout, res.stdout + res.stderr


def _demo(env: dict[str, str], scenario: str, timeout: float) -> tuple[int, str]:
    """Run one demo scenario; its output goes to ``$MODELGATE_HOME/demo-<scenario>.log`` as it runs."""
    out = Path(env["MODELGATE_HOME"]) / f"demo-{scenario}.log"
    with out.open("w") as f:
        rc = subprocess.run([sys.executable, "-m", "modelgate_dev.demo.run", "--scenario", scenario],
                            cwd=REPO, env=env, stdout=f, stderr=subprocess.STDOUT, timeout=timeout).returncode  # fmt: skip
    return rc, out.read_text()


@pytest.mark.timeout(2700)
def test_demo_good_on_the_production_profile(production_env: dict[str, str]) -> None:
    rc, out = _demo(production_env, "good", 2400)
    home = Path(production_env["MODELGATE_HOME"])
    log = (home / "stack.log").read_text()[-3000:] if (home / "stack.log").exists() else ""
    assert rc == 0, out[-6000:] + log
    summary: dict[str, Any] = json.loads((home / "demo" / "summary.json").read_text())
    assert summary["ok"] and summary["canary"]["verdict"] == "promoted"
    profile = summary["profile"]
    assert profile["name"] == "production"
    airflow = profile["airflow"]
    assert airflow["database"] == "postgresql" and airflow["executor"] == "CeleryExecutor"
    assert airflow["celery_tasks_succeeded"] > 10, airflow
    assert sorted(airflow["celery_workers"].values()) == [["default"], ["default", "gpu"]]
    mlflow = profile["mlflow"]
    assert (
        mlflow["store"] == "postgresql"
        and mlflow["store_matches_api"]
        and "churn" in mlflow["registered_models"]
    )
    replicas = profile["routers"]["replicas_ready"]
    assert replicas == 2, profile["routers"]  # MODELGATE_ROUTER_REPLICAS defaults to 2
    up = [(t["job"], t["health"]) for t in profile["prometheus"]["targets"]]
    assert up.count(("modelgate-router", "up")) == replicas and ("modelgate-dagruns", "up") in up, up


@pytest.mark.timeout(1500)
def test_demo_bad_canary_fires_the_guard_alert_in_prometheus(production_env: dict[str, str]) -> None:
    # after the good scenario (same stack and state): the slow copy is cut by a replica's guard, which
    # Prometheus scrapes; the alert whose name contains "Guard" fires and the summary records it
    rc, out = _demo(production_env, "bad-canary", 1300)
    assert rc == 0, out[-6000:]
    summary = json.loads((Path(production_env["MODELGATE_HOME"]) / "demo" / "summary.json").read_text())
    assert summary["canary"]["verdict"] == "rolled_back"
    fired = summary["profile"]["prometheus"]["alerts_fired"]
    assert any("Guard" in name for name in fired), summary["profile"]["prometheus"]
