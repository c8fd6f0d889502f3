"""`python -m modelgate_dev.stack env` prints the stack's settings but never a token or password."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from support import REPO


def test_stack_env_prints_no_token_or_password(tmp_path: Path) -> None:
    env = {**os.environ, "MODELGATE_HOME": str(tmp_path / "home")}
    res = subprocess.run([sys.executable, "-m", "modelgate_dev.stack", "env"], capture_output=True, text=True,
                         cwd=REPO, env=env, timeout=120)
    assert res.returncode == 0, res.stderr
    secrets = [p.read_text().strip() for p in (tmp_path / "home" / "secrets").iterdir()]
    assert len(secrets) >= 3, "the router token, the admin password and the API keys were generated"
    for value in secrets:
        assert value not in res.stdout
    assert "export MODELGATE_ROUTER_URL=" in res.stdout
    assert "AIRFLOW_CONN_MODELGATE_ROUTER='http://admin:***@127.0.0.1:" in res.stdout
    # MLflow: one 0600 password file per role, none of them printed; the connection names the file
    for user in ("admin", "airflow", "router", "batch"):
        path = tmp_path / "home" / "secrets" / f"mlflow-{user}-password"
        assert path.stat().st_mode & 0o777 == 0o600
        assert len(path.read_text().strip()) >= 12
    assert "mlflow-airflow-password" in res.stdout
    assert "export MLFLOW_DISABLE_TELEMETRY='true'" in res.stdout
    assert "MLFLOW_AUTH_ADMIN_PASSWORD" not in res.stdout


def test_procfile_runs_mlflow_with_basic_auth_and_each_process_reads_only_its_password() -> None:
    lines = dict(line.split(": ", 1) for line in (REPO / "Procfile").read_text().splitlines() if ": " in line
                 and not line.startswith("#"))
    assert "mlflow server --app-name basic-auth" in lines["mlflow"]
    assert "secrets/mlflow-admin-password" in lines["mlflow"]
    assert "secrets/mlflow-router-password" in lines["router"]
    for name, cmd in lines.items():
        if name not in ("mlflow", "router"):
            assert "password" not in cmd.lower(), name
