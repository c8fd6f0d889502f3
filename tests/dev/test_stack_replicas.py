"""Local router replicas of the stack: Procfile lines, the ``modelgate_router`` connection, health of each."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from support import REPO, free_port

from modelgate_dev.stack import StackConfig, healthy, router_connection, stack_env, write_procfile


def _cfg(tmp_path: Path, replicas: int, port: int = 8500) -> StackConfig:
    return StackConfig(tmp_path / "home", free_port(), free_port(), port, replicas)


def test_procfile_has_one_router_line_per_replica_on_consecutive_ports_with_own_state(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path, 3, port=9100)
    lines = write_procfile(cfg).read_text().splitlines()
    routers = [line for line in lines if line.startswith("router")]
    assert [line.split(":", 1)[0] for line in routers] == ["router0", "router1", "router2"]
    for i, line in enumerate(routers):
        assert f"--port {9100 + i} " in line and "$MODELGATE_ROUTER_PORT" not in line
        assert f"--state-dir $MODELGATE_HOME/router/replica-{9100 + i} " in line
    original = [line for line in (REPO / "Procfile").read_text().splitlines() if not line.startswith("router:")]
    assert [line for line in lines if not line.startswith("router")] == original, "other processes unchanged"


def test_router_connection_lists_every_replica_in_its_extra(tmp_path: Path) -> None:
    from airflow.models.connection import Connection

    cfg = _cfg(tmp_path, 3, port=9200)
    conn = Connection(conn_id="modelgate_router", uri=router_connection(cfg))
    assert (conn.host, conn.port, conn.login) == ("127.0.0.1", 9200, "admin")
    assert conn.password == (cfg.home / "secrets" / "router-admin-token").read_text().strip()
    assert conn.extra_dejson == {"replicas": [f"http://127.0.0.1:{p}" for p in (9200, 9201, 9202)]}
    env = stack_env(cfg)
    assert env["AIRFLOW_CONN_MODELGATE_ROUTER"] == router_connection(cfg)
    assert env["MODELGATE_ROUTER_REPLICAS"] == "3"
    assert env["ROUTER_STORE_URL"] == f"sqlite:///{cfg.home / 'audit.db'}", "replicas share the audit DB"


def test_health_checks_every_replica(tmp_path: Path) -> None:
    from serving.conftest import start_router
    from support import stop

    router = start_router(tmp_path / "router", {"models": {}})
    try:
        port = int(router.url.rsplit(":", 1)[1])
        # replica 1 (port + 1) is not running: reported unhealthy, replica 0 healthy
        cfg = StackConfig(tmp_path / "home", free_port(), free_port(), port, 2)
        state = healthy(cfg)
        assert state["router0"] is True and state["router1"] is False
        assert not all(state.values())
    finally:
        stop(router.proc)


@pytest.mark.parametrize("value", ["0", "17", "two"])
def test_a_bad_replica_count_is_refused_with_its_name(tmp_path: Path, value: str) -> None:
    import os

    env = {**os.environ, "MODELGATE_HOME": str(tmp_path / "home"), "MODELGATE_ROUTER_REPLICAS": value}
    res = subprocess.run([sys.executable, "-m", "modelgate_dev.stack", "env"], capture_output=True, text=True,
                         cwd=REPO, env=env, timeout=120)  # fmt: skip
    assert res.returncode == 2
    assert res.stderr.startswith("error: invalid stack settings: MODELGATE_ROUTER_REPLICAS: ")
    assert "Traceback" not in res.stderr
