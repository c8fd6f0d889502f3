"""nightly_batch_inference: pods of the kubernetes branch, and real ``dag.test()`` runs of the local branch."""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from support import REPO, python_file_cmd
from support_airflow import copy_migrated_db

DAG_FILE = REPO / "dags" / "nightly_batch_inference.py"
sys.path.insert(0, str(REPO / "tests" / "include" / "batch"))
from batch_support import make_classifier_onnx, write_partition  # noqa: E402

# Runs one dag.test() in a fresh process with its own AIRFLOW_HOME (the DAG is synced to the
# metadata database first, as Airflow >= 3.1 needs) and prints what happened as JSON.
_DRIVER = r"""
import json, sys
import pendulum
from airflow.dag_processing.bundles.manager import DagBundlesManager
from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db
from airflow.models.asset import AssetEvent, AssetModel
from airflow.models.xcom import XComModel
from airflow.utils.session import create_session

bag = DagBag(dag_folder=sys.argv[1])
assert not bag.import_errors, bag.import_errors
DagBundlesManager().sync_bundles_to_db()
sync_bag_to_db(bag, bundle_name="dags-folder", bundle_version=None)
dag = bag.dags["nightly_batch_inference"]
dr = dag.test(logical_date=pendulum.parse(sys.argv[2]), run_conf=json.loads(sys.argv[3]))
with create_session() as s:
    tis = {f"{ti.task_id}[{ti.map_index}]": str(ti.state) for ti in dr.get_task_instances(session=s)}
    xcoms = {f"{x.task_id}[{x.map_index}]": x.value for x in s.query(XComModel).filter_by(run_id=dr.run_id, key="return_value")}
    events = [{"name": a.name, "uri": a.uri, "extra": e.extra}
              for e, a in s.query(AssetEvent, AssetModel).join(AssetModel, AssetEvent.asset_id == AssetModel.id)
              .filter(AssetEvent.source_run_id == dr.run_id)]
print("RESULT " + json.dumps({"state": str(dr.state), "tis": tis, "xcoms": xcoms, "events": events}, default=str))
"""


@pytest.fixture(scope="module")
def airflow_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A migrated SQLite metadata database in a temporary AIRFLOW_HOME, as environment variables."""
    home = tmp_path_factory.mktemp("airflow_home")
    env = dict(os.environ)
    env.update(
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__DAGS_FOLDER=str(REPO / "dags"),
        AIRFLOW__CORE__UNIT_TEST_MODE="False",
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{home / 'airflow.db'}",
        PYTHONPATH=os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]),
    )
    env.pop("MODELGATE_BATCH_KUBERNETES", None)
    copy_migrated_db(home / "airflow.db")  # what `airflow db migrate` writes, without running it again
    return env


def _dag_test(env: dict[str, str], logical_date: str, conf: dict[str, Any]) -> dict[str, Any]:
    res = subprocess.run(
        [*python_file_cmd(_DRIVER, Path(env["AIRFLOW_HOME"])), str(DAG_FILE), logical_date, json.dumps(conf)],
        env=env, cwd=REPO, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    lines = [ln for ln in res.stdout.splitlines() if ln.startswith("RESULT ")]
    assert lines, (res.stdout + res.stderr)[-5000:]
    return dict(json.loads(lines[-1][len("RESULT ") :]))


@pytest.mark.integration
def test_dag_scores_the_desired_champion_not_a_hand_moved_alias_validates_and_quarantines_a_corrupt_partition(
    tmp_path: Path, airflow_env: dict[str, str], tracking_uri: str
) -> None:
    from include.config import get_settings
    from include.registry.registry import register_model, set_alias
    from modelgate_control.store import RouteStore

    env = dict(airflow_env, MODELGATE_TRACKING_URI=tracking_uri, MLFLOW_TRACKING_URI=tracking_uri)
    env["MODELGATE_HOME"] = str(tmp_path / "home")
    os.environ["MODELGATE_HOME"] = env["MODELGATE_HOME"]
    v = register_model(
        "batch-dag-test", make_classifier_onnx(tmp_path / "m.onnx"), actor="pytest", tracking_uri=tracking_uri
    )
    other = register_model(
        "batch-dag-test", make_classifier_onnx(tmp_path / "m2.onnx", seed=7), actor="pytest",
        tracking_uri=tracking_uri,
    )  # fmt: skip
    # the gates' desired state names v; the alias moved by hand (valid sha tag) to `other` changes nothing
    store = RouteStore(get_settings().resolved_audit_db_url())
    store.put("batch-dag-test", {"variants": [{"name": "champion", "uri": f"models:/batch-dag-test/{v.version}",
              "weight_bp": 10000}], "champion": "champion"}, actor="pytest", reason="test")  # fmt: skip
    store.dispose()
    set_alias("batch-dag-test", "champion", other.version, actor="by-hand", tracking_uri=tracking_uri)
    day = tmp_path / "in" / "dt=2026-11-27"
    for i in range(2):
        write_partition(day / f"part-{i}.parquet", 800 + i, seed=i)
    (day / "part-2.parquet").write_bytes(b"PAR1 corrupted partition")
    conf = {
        "model_name": "batch-dag-test",
        "input_root": str(tmp_path / "in"),
        "output_root": str(tmp_path / "out"),
    }
    out, quarantine = tmp_path / "out" / "dt=2026-11-27", tmp_path / "out" / "_quarantine" / "dt=2026-11-27"

    first = _dag_test(env, "2026-11-28T02:00:00+00:00", conf)  # scores the day before: dt=2026-11-27

    assert first["tis"]["score_local[0]"] == first["tis"]["score_local[1]"] == "success"
    assert first["tis"]["score_local[2]"] == "failed"
    assert first["tis"]["validate_and_publish[-1]"] == first["tis"]["emit_asset[-1]"] == "success"
    assert first["tis"]["report[-1]"] == "failed" and first["state"] == "failed"  # the quarantine is reported
    assert sorted(p.name for p in out.iterdir()) == [
        "_PUBLISHED.json", "part-0.manifest.json", "part-0.parquet", "part-1.manifest.json", "part-1.parquet",
    ]  # fmt: skip
    for i in range(2):
        man = json.loads((out / f"part-{i}.manifest.json").read_text())
        assert man["model"]["uri"] == f"models:/batch-dag-test/{v.version}"  # the desired champion, not the alias
        assert man["model"]["version"] == v.version and man["output"]["rows"] == 800 + i
    published = json.loads((out / "_PUBLISHED.json").read_text())
    assert [p["partition"] for p in published["partitions"]] == [
        str(day / "part-0.parquet"),
        str(day / "part-1.parquet"),
    ]
    reason = json.loads((quarantine / "part-2.reason.json").read_text())
    assert reason["partition"] == str(day / "part-2.parquet") and reason["reason"].startswith("no output")
    assert first["xcoms"]["validate_and_publish[-1]"]["quarantined"][0]["partition"] == str(
        day / "part-2.parquet"
    )
    assert [e["name"] for e in first["events"]] == ["modelgate_batch_scores_2026-11-27"]
    assert first["events"][0]["uri"] == f"file://{out}"
    assert first["events"][0]["extra"]["rows"] == 1601 and first["events"][0]["extra"]["partitions"] == 2

    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    second = _dag_test(env, "2026-11-28T02:00:00+00:00", {**conf, "date": "2026-11-27"})
    assert [second["xcoms"][f"score_local[{i}]"]["status"] for i in range(2)] == ["skipped", "skipped"]
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before  # no work, nothing rewritten


def test_kubernetes_branch_launches_gpu_pods_built_by_the_provider(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.dag_processing.dagbag import DagBag
    from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
    from airflow.sdk import BaseOperator
    from kubernetes.client import ApiClient

    from include.batch.pods import pod_expand_kwargs

    monkeypatch.setenv("MODELGATE_BATCH_KUBERNETES", "1")
    monkeypatch.setenv("MODELGATE_BATCH_IMAGE", "registry.example/modelgate-batch:2.0.0")
    monkeypatch.setenv("MODELGATE_BATCH_NODE_SELECTOR", '{"pool": "gpu"}')
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "never-in-a-pod-8c1d")
    bag = DagBag(dag_folder=str(DAG_FILE))
    assert not bag.import_errors
    dag = bag.dags["nightly_batch_inference"]
    mapped = dag.get_task("score_kubernetes")
    assert dag.get_task("choose_backend").downstream_task_ids == {"score_local", "pod_args"}
    assert "validate_and_publish" in mapped.downstream_task_ids
    accepted = set(inspect.signature(KubernetesPodOperator.__init__).parameters) | set(
        inspect.signature(BaseOperator.__init__).parameters
    )
    kw = {k: v for k, v in mapped.partial_kwargs.items() if k in accepted}
    per = pod_expand_kwargs(["/data/in/dt=2026-11-27/part-7.parquet"], "models:/churn/3", "/data/out/dt=2026-11-27",
                            dag_id=dag.dag_id, run_id="manual__1")  # fmt: skip
    pod = KubernetesPodOperator(task_id="score_kubernetes", **kw, **per[0]).build_pod_request_obj(
        dry_run=True
    )
    spec = ApiClient().sanitize_for_serialization(pod)
    (c,) = spec["spec"]["containers"]
    assert c["image"] == "registry.example/modelgate-batch:2.0.0"
    assert c["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert c["args"][:6] == [
        "--model-uri",
        "models:/churn/3",
        "--input",
        "/data/in/dt=2026-11-27/part-7.parquet",
        "--output",
        "/data/out/dt=2026-11-27",
    ]
    assert spec["spec"]["nodeSelector"] == {"pool": "gpu"}
    assert any(t["key"] == "nvidia.com/gpu" for t in spec["spec"]["tolerations"])
    assert spec["metadata"]["labels"]["modelgate/partition"] == "part-7"
    assert "never-in-a-pod-8c1d" not in json.dumps(spec)
    assert (
        kw["deferrable"] is True
        and kw["on_finish_action"] == "delete_pod"
        and kw["retry_exponential_backoff"]
    )
