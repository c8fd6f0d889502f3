"""Fixtures shared by every test folder."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import REPO, make_logreg_onnx, mlflow_identity, start_mlflow_server, stop

# Airflow reads its configuration when first imported: give the whole test session its own
# AIRFLOW_HOME (SQLite metadata DB) and modelgate state folder before anything imports airflow.
_SESSION_ROOT = Path(tempfile.mkdtemp(prefix="modelgate-tests-"))
os.environ["AIRFLOW_HOME"] = str(_SESSION_ROOT / "airflow")
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(REPO / "dags")
os.environ["AIRFLOW__CORE__PLUGINS_FOLDER"] = str(REPO / "plugins")
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{_SESSION_ROOT / 'airflow' / 'airflow.db'}"
os.environ["MODELGATE_HOME"] = str(_SESSION_ROOT / "modelgate")
# the MLflow passwords of the test servers (and the audit key) stay here even where a test points
# MODELGATE_HOME elsewhere, so every process a test starts finds its identity
os.environ["MODELGATE_SECRETS_DIR"] = str(_SESSION_ROOT / "modelgate" / "secrets")
os.environ.pop("AIRFLOW_CONN_MODELGATE_MLFLOW", None)


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real MLflow tracking + registry server (basic-auth on) on loopback, for the whole session.

    The test process talks to it as ``airflow`` (the writer); use
    ``include.registry.credentials.as_identity`` for another identity.
    """
    from include.registry.credentials import use_identity

    root = tmp_path_factory.mktemp("mlflow")
    proc, uri = start_mlflow_server(root)
    use_identity(mlflow_identity("airflow"))
    try:
        yield uri
    finally:
        use_identity(None)
        stop(proc)


@pytest.fixture(autouse=True)
def _mlflow_identity_restored() -> Iterator[None]:
    """Give every test the MLflow identity the one before it had.

    The identity is process-wide (``use_identity``): code a test runs in-process (the MLflow hook of a
    ``dag.test()`` task, the batch job's ``main`` as ``batch``, the rollback CLI) switches it, and the
    next test's registry writes would then carry that identity (403) or none (401).
    """
    from include.registry import credentials

    with credentials._lock:
        before = list(credentials._current)
    yield
    with credentials._lock:
        credentials._current[:] = before


@pytest.fixture
def tracking_uri(mlflow_server: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Point this test's MLflow client and modelgate settings at the session's server."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    monkeypatch.setenv("MODELGATE_TRACKING_URI", mlflow_server)
    return mlflow_server


@pytest.fixture
def logreg_onnx(tmp_path: Path) -> Path:
    """A tiny valid ONNX classifier with 4 float features."""
    return make_logreg_onnx(tmp_path / "logreg.onnx")
