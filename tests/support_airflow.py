"""Running DAGs in tests: a migrated metadata DB per session and ``dag.test()`` on a DAG file."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from support import REPO

_MIGRATED = False


def _template() -> Path:
    return Path(os.environ["AIRFLOW_HOME"]) / "migrated-template.db"


def ensure_airflow_db() -> None:
    """Run ``airflow db migrate`` once per test session (AIRFLOW_HOME is set by tests/conftest.py).

    A copy of the freshly migrated database is kept for :func:`copy_migrated_db`.
    """
    global _MIGRATED
    if _MIGRATED:
        return
    Path(os.environ["AIRFLOW_HOME"]).mkdir(parents=True, exist_ok=True)
    airflow = Path(sys.executable).parent / "airflow"
    res = subprocess.run([str(airflow), "db", "migrate"], capture_output=True, text=True, timeout=300)
    if res.returncode != 0:
        raise RuntimeError(f"airflow db migrate failed:\n{res.stdout[-2000:]}\n{res.stderr[-2000:]}")
    db = os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].removeprefix("sqlite:///")
    shutil.copyfile(db, _template())  # the migrate process has exited: the SQLite file is complete
    _MIGRATED = True


def copy_migrated_db(dest: Path) -> Path:
    """Write a freshly migrated, empty SQLite metadata DB to ``dest`` (for a test's own ``AIRFLOW_HOME``).

    It is a copy of what ``airflow db migrate`` wrote for this session before any test used it, so a module
    with its own metadata DB does not pay a second migration.
    """
    ensure_airflow_db()
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(_template(), dest)
    return dest


def load_dag(dag_file: str, dag_id: str) -> Any:
    """Parse one file of dags/ with Airflow's DagBag and return the DAG, failing on import errors."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(REPO / "dags" / dag_file))
    assert not bag.import_errors, bag.import_errors
    return bag.get_dag(dag_id)


def run_dag(dag_file: str, dag_id: str, conf: dict[str, Any] | None = None) -> Any:
    """Run a DAG once with ``dag.test()`` and return the DagRun (its state is left to the caller).

    On Airflow >= 3.1 the DAG must be serialised to the metadata DB first (as astronomer-cosmos's
    tests do): create a bundle row, bag the DAG and sync the bag.
    """
    ensure_airflow_db()
    from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db
    from airflow.models.dagbundle import DagBundleModel
    from airflow.utils.session import create_session

    dag = load_dag(dag_file, dag_id)
    with create_session() as session:
        session.merge(DagBundleModel(name="modelgate_tests"))
        session.commit()
    bag = DagBag(dag_folder=str(REPO / "dags" / dag_file))
    sync_bag_to_db(bag, bundle_name="modelgate_tests", bundle_version=None)
    return dag.test(run_conf=conf or {})


def task_states(dag_run: Any) -> dict[str, str]:
    """Return {task_id: state} of a finished DagRun (mapped tasks: the last map index)."""
    from airflow.utils.session import create_session

    with create_session() as session:
        tis = dag_run.get_task_instances(session=session)
        return {ti.task_id: str(ti.state) for ti in tis}
