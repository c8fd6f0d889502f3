"""End to end: the real local stack (MLflow + Airflow api-server/scheduler/dag-processor/triggerer),
registration triggered through the REST API with ``modelgate trigger``, result checked in MLflow."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import REPO, free_port, make_logreg_onnx

pytestmark = pytest.mark.e2e

BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    home = tmp_path_factory.mktemp("stack")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "MLFLOW", "MODELGATE"))}
    env.update(
        MODELGATE_HOME=str(home),
        MODELGATE_MLFLOW_PORT=str(free_port()),
        MODELGATE_AIRFLOW_PORT=str(free_port()),
        MODELGATE_ROUTER_PORT=str(free_port()),
    )
    up = subprocess.run(
        [sys.executable, "-m", "modelgate_dev.stack", "up", "--timeout", "300"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=420,
    )
    try:
        assert up.returncode == 0, up.stdout + up.stderr + (home / "stack.log").read_text()[-4000:]
        # where the passwords are, never a password (Airflow admin, MLflow users)
        assert "password in" in up.stdout
        for secret in (home / "secrets").glob("*password"):
            assert secret.read_text().strip() not in up.stdout + (home / "stack.log").read_text()
        again = subprocess.run(
            [sys.executable, "-m", "modelgate_dev.stack", "up"],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert again.returncode == 0 and "already up" in again.stdout, "make up is idempotent"
        yield env
    finally:
        down = subprocess.run(
            [sys.executable, "-m", "modelgate_dev.stack", "down"],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert down.returncode == 0, down.stderr


def _trigger(env: dict[str, str], conf: dict) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            str(BIN / "modelgate"),
            "trigger",
            "model_registration",
            "--conf",
            json.dumps(conf),
            "--url",
            f"http://127.0.0.1:{env['MODELGATE_AIRFLOW_PORT']}",
            "--timeout",
            "300",
            "--poll",
            "1",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=400,
    )


def test_ci_registers_a_model_through_the_rest_api_and_mlflow_has_it(
    stack: dict[str, str], tmp_path: Path
) -> None:
    inbox = Path(stack["MODELGATE_HOME"]) / "inbox"  # registration reads only from allowed roots
    inbox.mkdir(parents=True, exist_ok=True)
    model = make_logreg_onnx(inbox / "churn.onnx", seed=5)
    res = _trigger(stack, {"model_name": "e2e-churn", "artifact_uri": "churn.onnx"})
    assert res.returncode == 0, res.stdout + res.stderr
    assert '"state": "success"' in res.stdout
    from mlflow import MlflowClient

    from include.registry.credentials import as_identity, read_identity

    uri = f"http://127.0.0.1:{stack['MODELGATE_MLFLOW_PORT']}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    # the stack's MLflow runs with basic-auth: read as its human admin (password file under its home)
    with as_identity(read_identity(Path(stack["MODELGATE_HOME"]) / "secrets", "admin")):
        mv = client.get_model_version_by_alias("e2e-churn", "champion")
    assert mv.version == "1"
    assert mv.tags["modelgate.registered_by"] == "admin", "the actor is the authenticated API user"
    import hashlib

    assert mv.tags["modelgate.source_sha256"] == hashlib.sha256(model.read_bytes()).hexdigest()
    verify = subprocess.run(
        [str(BIN / "modelgate"), "audit", "verify"],
        cwd=REPO,
        env=stack,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
    # one record for the new version, one for its alias: the change is audited once
    assert "2 records" in verify.stdout and "head anchor intact" in verify.stdout, verify.stdout


def test_ci_sees_a_failed_registration_with_its_reason_and_a_non_zero_exit(
    stack: dict[str, str], tmp_path: Path
) -> None:
    res = _trigger(stack, {"model_name": "e2e-churn", "artifact_uri": "nope.onnx"})
    assert res.returncode == 1, res.stdout + res.stderr
    assert '"state": "failed"' in res.stdout
    assert "stage" in res.stdout and "nope.onnx" in res.stdout


def test_wrong_password_is_a_clear_error(stack: dict[str, str]) -> None:
    res = subprocess.run(
        [
            str(BIN / "modelgate"),
            "trigger",
            "model_registration",
            "--password",
            "wrong",
            "--url",
            f"http://127.0.0.1:{stack['MODELGATE_AIRFLOW_PORT']}",
        ],
        cwd=REPO,
        env=stack,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 2 and "refused the credentials" in res.stderr


def _local_executor_workers(home: str) -> list[int]:
    # descendants of the stack's honcho (stack.pid) titled as LocalExecutor workers; setproctitle overwrites
    # the environment a process started with, so the ancestry tells the stack's workers apart
    honcho = int((Path(home) / "stack.pid").read_text().split()[0])
    parent, titles = {}, {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            titles[int(proc.name)] = (proc / "cmdline").read_bytes().replace(b"\0", b" ")
            parent[int(proc.name)] = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError):
            continue

    def under_honcho(pid: int) -> bool:
        while pid > 1:
            pid = parent.get(pid, 0)
            if pid == honcho:
                return True
        return False

    return [pid for pid, title in titles.items() if b"LocalExecutor" in title and under_honcho(pid)]


def test_the_local_executor_workers_start_with_the_task_libraries_loaded(stack: dict[str, str]) -> None:
    # the scheduler preloads them before its LocalExecutor forks (modelgate_dev/preload.py): what a worker
    # has mapped, every task process it forks has without importing it again
    workers = _local_executor_workers(stack["MODELGATE_HOME"])
    assert workers, "the stack's scheduler runs LocalExecutor workers"
    for pid in workers:
        maps = Path(f"/proc/{pid}/maps").read_text()
        for lib in ("onnxruntime_pybind11_state", "libarrow", "scipy"):
            assert lib in maps, f"worker {pid} has not loaded {lib}"
