"""Fixtures shared by every test folder."""

from __future__ import annotations

import importlib.machinery
import os
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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

# An xdist worker's ``__main__`` (execnet's) has neither ``__spec__`` nor ``__file__``: pyspark's connect module
# (imported by great_expectations) then takes the process for a doctest run and calls ``sys.exit(0)``. A spec
# named ``__main__`` tells it otherwise, and multiprocessing's spawn skips re-importing such a main module.
_main = sys.modules["__main__"]
if getattr(_main, "__spec__", None) is None and not hasattr(_main, "__file__"):
    _main.__spec__ = importlib.machinery.ModuleSpec("__main__", None)

# `make test` runs on several xdist workers: each test module is one work unit (its module fixtures start
# once), handed out in collection order (``--no-loadscope-reorder``), which the hook below sorts longest
# first. Both e2e modules are one unit: two whole local stacks at once would starve a 2-core machine. The demo
# runs first in that unit, so its worker takes no other unit meanwhile (xdist hands a worker more work once 2
# or fewer of its tests are pending; 3 stack tests follow the demo).
_FIRST_FOLDERS = ("tests/e2e/", "tests/integration/", "tests/dags/", "tests/plugins/", "tests/serving/")
_E2E_UNIT = "tests/e2e/"


def work_unit(nodeid: str) -> str:
    """Return the xdist work unit of a test: its module, or the one e2e unit.

    (xdist's own ``xdist_group`` mark has no effect with pytest 9.2, whose node ids xdist 3.8 cannot rename.)
    """
    path = nodeid.split("::", 1)[0]
    return _E2E_UNIT if path.startswith(_E2E_UNIT) else path


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """Schedule by :func:`work_unit` (called on the xdist controller only)."""
    from xdist.scheduler import LoadScopeScheduling

    class ModuleScheduling(LoadScopeScheduling):  # type: ignore[misc]
        def _split_scope(self, nodeid: str) -> str:
            return work_unit(nodeid)

    return ModuleScheduling(config, log)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Order the tests by work unit, longest first: e2e (the demo first), then DAG runs and processes.

    Within a folder rank, units with more tests come first; a unit's tests keep pytest's order.
    """
    units = {item: work_unit(item.nodeid) for item in items}
    sizes = Counter(units.values())
    original = {item: i for i, item in enumerate(items)}

    def key(item: pytest.Item) -> tuple[int, int, str, int, int]:
        unit = units[item]
        tier = next((i for i, f in enumerate(_FIRST_FOLDERS) if unit.startswith(f)), len(_FIRST_FOLDERS))
        demo_first = 0 if item.nodeid.startswith("tests/e2e/test_demo.py") else 1
        return tier, -sizes[unit], unit, demo_first, original[item]

    items.sort(key=key)


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
