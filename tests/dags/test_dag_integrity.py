"""Parse hygiene for every file in dags/ (file path as test id), as Airflow's own example-DAG test does."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from support import REPO

DAG_FILES = sorted(p for p in (REPO / "dags").glob("*.py") if not p.name.startswith("_"))
HEAVY = ["mlflow", "onnxruntime", "great_expectations", "sklearn", "pandas", "onnx", "pyarrow", "kubernetes"]

# One interpreter imports Airflow's parsing machinery once, then forks a child per DAG file: each file is
# parsed in a process holding what a fresh interpreter holds after those same imports (the heavy-module check
# compares against that), without paying Airflow's import once per file.
_PROBE = r"""
import json, os, sys
from unittest import mock
from airflow.sdk import BaseHook, Variable
from airflow.dag_processing.dagbag import DagBag
for path in sys.argv[1:]:
    sys.stdout.flush()
    pid = os.fork()
    if pid:
        os.waitpid(pid, 0)
        continue
    calls = []
    def refuse(kind):
        def _r(*a, **k):
            calls.append(kind)
            raise RuntimeError(f"{kind} accessed at parse time")
        return _r
    with mock.patch.object(BaseHook, "get_connection", refuse("connection")), \
         mock.patch.object(Variable, "get", refuse("variable")):
        bag = DagBag(dag_folder=path)
    heavy = [m for m in %(heavy)r if m in sys.modules]
    dags = {d.dag_id: {"owner": d.owner, "tags": sorted(d.tags), "doc": d.doc_md or "", "params": sorted(d.params),
            "retries": [t.retries for t in d.tasks]} for d in bag.dags.values()}
    print("PROBE " + json.dumps({"file": os.path.basename(path),
                                 "errors": {k: str(v)[-500:] for k, v in bag.import_errors.items()},
                                 "heavy": heavy, "calls": calls, "dags": dags}))
    sys.stdout.flush()
    os._exit(0)
"""


@pytest.fixture(scope="module")
def probes() -> dict[str, dict]:
    res = subprocess.run([sys.executable, "-c", _PROBE % {"heavy": HEAVY}, *map(str, DAG_FILES)],
                         capture_output=True, text=True, cwd=REPO, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    found = [json.loads(line[len("PROBE "):]) for line in res.stdout.splitlines() if line.startswith("PROBE ")]
    out = {p.pop("file"): p for p in found}
    assert sorted(out) == sorted(f.name for f in DAG_FILES), (res.stdout + res.stderr)[-3000:]
    return out


def test_there_are_dag_files() -> None:
    assert any(f.name == "model_registration.py" for f in DAG_FILES)


@pytest.mark.parametrize("dag_file", DAG_FILES, ids=lambda p: f"dags/{p.name}")
def test_dag_file_imports_cleanly_without_heavy_modules_connections_or_variables(
    dag_file: Path, probes: dict[str, dict]
) -> None:
    p = probes[dag_file.name]
    assert p["errors"] == {}
    assert p["dags"], "the file defines at least one DAG"
    assert p["heavy"] == [], f"heavy modules imported at parse time: {p['heavy']}"
    assert p["calls"] == [], "connections or Variables read at parse time"


@pytest.mark.parametrize("dag_file", DAG_FILES, ids=lambda p: f"dags/{p.name}")
def test_every_dag_has_owner_tags_retries_and_its_own_doc(dag_file: Path, probes: dict[str, dict]) -> None:
    for dag_id, d in probes[dag_file.name]["dags"].items():
        assert d["owner"] and d["owner"] != "airflow", dag_id
        assert "modelgate" in d["tags"], dag_id
        assert all(r >= 1 for r in d["retries"]), f"{dag_id}: every task retries"
        assert dag_id in d["doc"], f"{dag_id}: doc_md describes this DAG"
        assert len(d["doc"]) > 200, dag_id


@pytest.mark.parametrize("dag_file", DAG_FILES, ids=lambda p: f"dags/{p.name}")
def test_no_dag_lets_its_conf_name_the_actor(dag_file: Path, probes: dict[str, dict]) -> None:
    """The actor is the user who triggered the run (or the DAG), never a param the caller fills in."""
    for dag_id, d in probes[dag_file.name]["dags"].items():
        assert "actor" not in d["params"], dag_id
    source = dag_file.read_text()
    for read in ('conf.get("actor")', 'conf or {}).get("actor")', 'conf["actor"]', "conf_actor"):
        assert read not in source, f"{dag_id}: reads an actor from conf ({read})"


def test_include_never_imports_airflow() -> None:
    offenders = [
        str(p.relative_to(REPO))
        for p in (REPO / "include").rglob("*.py")
        if any(line.lstrip().startswith(("import airflow", "from airflow")) for line in p.read_text().splitlines())
    ]
    assert offenders == []
