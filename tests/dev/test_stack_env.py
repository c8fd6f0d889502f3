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
