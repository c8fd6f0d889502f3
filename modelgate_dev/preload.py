"""Run an Airflow command with the task libraries imported first: the local stack's scheduler.

Airflow's LocalExecutor forks its workers from the scheduler, and each worker forks every task
process (``os.fork`` on Linux, after ``gc.freeze``); so a module the scheduler imported before it
started its executor is already in each task process. Without this every task imports mlflow,
great_expectations, scipy and pandas itself: ~4 s of CPU per task on this machine, most of a short
task's cost (``docs/benchmarks.md``, the suite's wall time). The same idea as gunicorn's
``--preload``. Only third-party libraries are preloaded, none of which starts a thread on import
(checked by ``tests/dev/test_preload.py``): domain modules may read settings at import, and a task
must read them in its own process.

Usage: ``python -m modelgate_dev.preload scheduler`` (the arguments of ``airflow``).
"""

from __future__ import annotations

import importlib
import sys

# what the DAG tasks import (registration, regression, canary, A/B, drift); onnxruntime and pyarrow are cheap
# but load native libraries every task would map again
PRELOAD = (
    "numpy",
    "pandas",
    "pyarrow.dataset",
    "pyarrow.parquet",
    "scipy.stats",
    "onnx",
    "onnxruntime",
    "httpx",
    "mlflow",
    "great_expectations",
)


def preload(modules: tuple[str, ...] = PRELOAD) -> list[str]:
    """Import ``modules``; return those that could not be imported (a missing one only costs speed)."""
    missing = []
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    return missing


def main(argv: list[str] | None = None) -> int:
    """Preload, then run ``airflow`` with ``argv`` (default: this process's arguments)."""
    args = sys.argv[1:] if argv is None else argv
    preload()
    from airflow.__main__ import main as airflow_main

    sys.argv = ["airflow", *args]
    airflow_main()
    return 0


if __name__ == "__main__":
    sys.exit(main())
