"""Helpers shared by the test suite: free ports, real servers on loopback, tiny ONNX models."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from include.registry.credentials import MlflowIdentity

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, timeout: float = 60.0, proc: subprocess.Popen | None = None) -> None:
    """Poll ``url`` until it answers 2xx; fail if ``proc`` exits or the timeout passes."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process for {url} exited early with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if 200 <= r.status < 300:
                    return
        except Exception as e:
            last = e
        time.sleep(0.25)
    raise TimeoutError(f"{url} did not come up in {timeout}s: {last}")


def stop(proc: subprocess.Popen, timeout: float = 15.0) -> None:
    """Stop a process group started with ``start_new_session=True``."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=timeout)
    except (subprocess.TimeoutExpired, ProcessLookupError):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=5)


def start_mlflow_server(root: Path, port: int | None = None) -> tuple[subprocess.Popen, str]:
    """Start a real ``mlflow server`` with basic-auth (SQLite + local artifacts under ``root``) on a free port.

    Authentication is on, as in every profile: the users ``admin``, ``airflow``, ``router`` and
    ``batch`` are created (idempotently) with the passwords of the session's secrets folder
    (``include.registry.audit_anchor.secrets_dir()``), so subprocesses find them there too.
    """
    from include.registry.audit_anchor import secrets_dir
    from include.registry.mlflow_users import ensure_users, server_env, write_auth_config

    root.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    config = write_auth_config(root / "basic_auth.ini", root / "basic_auth.db")
    env = {**os.environ, **server_env(secrets_dir(), config)}
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    for name in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        env.pop(name, None)
    cmd = [
        str(VENV_BIN / "mlflow"), "server", "--app-name", "basic-auth",
        "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
        "--artifacts-destination", str(root / "mlartifacts"),
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
    ]
    log = open(root / "mlflow-server.log", "ab")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    uri = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{uri}/health", timeout=300, proc=proc)  # the auth app starts slowly on a loaded machine
        ensure_users(uri, secrets_dir())
    except Exception as e:
        stop(proc)
        raise RuntimeError(f"{e}\n{(root / 'mlflow-server.log').read_text()[-3000:]}") from e
    return proc, uri


def mlflow_identity(user: str) -> MlflowIdentity:
    """Return the test servers' identity of ``user`` (``admin``, ``airflow``, ``router``, ``batch``)."""
    from include.registry.audit_anchor import secrets_dir
    from include.registry.credentials import read_identity

    return read_identity(secrets_dir(), user)


def mlflow_env(user: str, required: bool = True) -> dict[str, str]:
    """Return ``MLFLOW_TRACKING_USERNAME``/``PASSWORD`` of ``user``, for a process started by a test.

    For processes that read MLflow's standard variables (the router, mlflow CLIs); modelgate's own
    processes find their identity in the secrets folder instead. With ``required=False``, an empty
    dict when no test server has made the users yet.
    """
    from include.registry.audit_anchor import secrets_dir
    from include.registry.credentials import password_file

    if not required and not password_file(secrets_dir(), user).exists():
        return {}
    who = mlflow_identity(user)
    return {"MLFLOW_TRACKING_USERNAME": who.username, "MLFLOW_TRACKING_PASSWORD": who.password}


def make_logreg_onnx(
    path: Path,
    n_features: int = 4,
    seed: int = 0,
    input_name: str = "input",
    weights: np.ndarray | None = None,
) -> Path:
    """Write a tiny logistic-regression ONNX model: float[N, n_features] -> probabilities float[N, 2]."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    w = (weights if weights is not None else rng.normal(size=(n_features, 1))).astype(np.float32)
    b = np.array([0.1], dtype=np.float32)
    nodes = [
        helper.make_node("MatMul", [input_name, "W"], ["z0"]),
        helper.make_node("Add", ["z0", "B"], ["z"]),
        helper.make_node("Sigmoid", ["z"], ["p1"]),
        helper.make_node("Sub", ["one", "p1"], ["p0"]),
        helper.make_node("Concat", ["p0", "p1"], ["probabilities"], axis=1),
    ]
    graph = helper.make_graph(
        nodes,
        "logreg",
        [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, [None, n_features])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, 2])],
        initializer=[
            numpy_helper.from_array(w, "W"),
            numpy_helper.from_array(b, "B"),
            numpy_helper.from_array(np.array([1.0], dtype=np.float32), "one"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def python_file_cmd(code: str, directory: Path, name: str = "driver.py") -> list[str]:
    """Return ``[python, <file>]`` running ``code`` from a file written into ``directory``.

    Use it instead of ``python -c``: there ``__main__`` has no ``__file__``, and pyspark's connect
    module (imported by great_expectations when pyspark is installed) takes such a process for a
    doctest run and calls ``sys.exit(0)`` in the middle of a task.
    """
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(code, encoding="utf-8")
    return [sys.executable, str(path)]
