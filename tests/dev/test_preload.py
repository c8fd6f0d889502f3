"""The local stack's scheduler preloads the task libraries (``modelgate_dev.preload``) safely before forking."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from support import REPO

from modelgate_dev.preload import PRELOAD, preload


def test_every_preloaded_library_imports_and_none_starts_a_thread(tmp_path: Path) -> None:
    # fork copies only the forking thread: a library that started a thread on import would leave a task
    # process with that thread's locks held and the thread gone
    code = (
        "import json, sys, threading\n"
        "from modelgate_dev.preload import preload\n"
        "missing = preload()\n"
        "print(json.dumps({'missing': missing, 'threads': [t.name for t in threading.enumerate()],"
        " 'loaded': sorted(m for m in sys.modules if m.split('.')[0] in ('mlflow', 'great_expectations'))[:3]}))\n"
    )
    # a script file, not ``-c``: pyspark (which great_expectations imports) exits a process whose __main__
    # has neither a spec nor a file, taking it for a doctest run
    script = tmp_path / "probe.py"
    script.write_text(code)
    res = subprocess.run([sys.executable, str(script)], cwd=REPO, capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(REPO)})  # fmt: skip
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["missing"] == [] and out["threads"] == ["MainThread"], out
    assert out["loaded"], "mlflow and great_expectations are in the process"


def test_a_library_that_is_not_installed_only_costs_speed() -> None:
    assert preload(("modelgate_no_such_library",)) == ["modelgate_no_such_library"]
    assert "mlflow" in PRELOAD and "great_expectations" in PRELOAD


def test_the_arguments_go_to_airflow() -> None:
    import airflow

    res = subprocess.run(
        [sys.executable, "-m", "modelgate_dev.preload", "version"], cwd=REPO, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip().splitlines()[-1] == airflow.__version__
