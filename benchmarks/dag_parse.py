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
RUNS = 7
TRIVIAL = '''
import pendulum
from airflow.sdk import dag, task

@dag(schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False)
def trivial():
    @task
    def one():
        return 1
    one()

trivial()
'''
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


def parse_seconds(path: Path) -> float:
    times = []
    for _ in range(RUNS):
        out = subprocess.run([sys.executable, "-c", PROBE % {"repo": str(REPO)}, str(path)],
                             capture_output=True, text=True, check=True, cwd=REPO)
        times.append(float(out.stdout.strip().splitlines()[-1]))
    return statistics.median(times)


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        trivial = Path(tmp) / "trivial.py"
        trivial.write_text(TRIVIAL)
        base = parse_seconds(trivial)
    print(f"{'DAG file':40s} {'parse ms':>9s} {'ratio':>6s}")
    print(f"{'(trivial one-task DAG)':40s} {base * 1000:9.1f} {1.0:6.2f}")
    worst = 0.0
    for f in sorted((REPO / "dags").glob("*.py")):
        t = parse_seconds(f)
        ratio = t / base
        worst = max(worst, ratio)
        print(f"{'dags/' + f.name:40s} {t * 1000:9.1f} {ratio:6.2f}")
    print(f"worst ratio {worst:.2f} (bar 1.50): {'PASS' if worst <= 1.5 else 'FAIL'}")
    return 0 if worst <= 1.5 else 1


if __name__ == "__main__":
    sys.exit(main())
