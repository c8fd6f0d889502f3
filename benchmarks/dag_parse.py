"""DAG parse time per file against a trivial one-task DAG (bar: each within 1.5x).

Each file is imported in a fresh interpreter that has already imported ``airflow.sdk`` (the
dag-processor's situation), N times; the median import time of the file is compared with the
median of a trivial one-task TaskFlow DAG. Run: ``make bench-dags``.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RUNS = 9
TRIVIAL = """
import pendulum
from airflow.sdk import dag, task

@dag(schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False)
def trivial():
    @task
    def one():
        return 1
    one()

trivial()
"""
PROBE = r"""
import sys, time, importlib.util
sys.path.insert(0, %(repo)r)
import airflow.sdk, pendulum  # already loaded in a dag-processor
spec = importlib.util.spec_from_file_location("dagfile", sys.argv[1])
mod = importlib.util.module_from_spec(spec)
t = time.perf_counter()
spec.loader.exec_module(mod)
print(time.perf_counter() - t)
"""


def parse_once(path: Path) -> float:
    out = subprocess.run(
        [sys.executable, "-c", PROBE % {"repo": str(REPO)}, str(path)],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
    )
    return float(out.stdout.strip().splitlines()[-1])


def main() -> int:
    files = sorted((REPO / "dags").glob("*.py"))
    with tempfile.TemporaryDirectory() as tmp:
        trivial = Path(tmp) / "trivial.py"
        trivial.write_text(TRIVIAL)
        samples: dict[Path, list[float]] = {f: [] for f in [trivial, *files]}
        for _ in range(RUNS):  # interleaved, so drift in machine load hits every file alike
            for f in samples:
                samples[f].append(parse_once(f))
        base = statistics.median(samples[trivial])
    print(f"{'DAG file':40s} {'parse ms':>9s} {'ratio':>6s}")
    print(f"{'(trivial one-task DAG)':40s} {base * 1000:9.1f} {1.0:6.2f}")
    worst = 0.0
    for f in files:
        t = statistics.median(samples[f])
        ratio = t / base
        worst = max(worst, ratio)
        print(f"{'dags/' + f.name:40s} {t * 1000:9.1f} {ratio:6.2f}")
    print(f"worst ratio {worst:.2f} (bar 1.50): {'PASS' if worst <= 1.5 else 'FAIL'}")
    return 0 if worst <= 1.5 else 1


if __name__ == "__main__":
    sys.exit(main())
