"""RouteStore on SQLite and a real PostgreSQL: one global generation, change + audit record in one
transaction, idempotent repeats, and concurrent writers from several processes."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from support import REPO, free_port

from include.registry import audit
from modelgate_control import ControlError, StoreUnavailable
from modelgate_control.store import RouteStore


def _doc(canary_bp: int, uri: str = "/m/b.onnx") -> dict:
    return {
        "salt": "s1",
        "variants": [
            {"name": "champion", "uri": "/m/a.onnx", "weight_bp": 10000 - canary_bp},
            {"name": "canary", "uri": uri, "weight_bp": canary_bp},
        ],
    }


def _store(url: str, secrets: Path) -> RouteStore:
    return RouteStore(url, key_file=secrets / "audit-hmac.key")


def test_put_get_snapshot_and_one_global_generation(backend, _own_secrets):
    s = _store(backend.url, _own_secrets)
    assert s.generation() == 0 and s.snapshot() == (0, {}) and s.get("churn") is None
    g1 = s.put("churn", _doc(500), actor="alice", reason="canary 5%", run_id="run-1")
    g2 = s.put("fraud", _doc(0), actor="bob", reason="new model")
    g3 = s.put("churn", _doc(2500), actor="alice", reason="canary 25%")
    assert (g1, g2, g3) == (1, 2, 3)  # one counter over all models
    assert s.generation() == 3
    assert s.get("churn") == (3, _doc(2500)) and s.get("fraud") == (2, _doc(0))
    assert s.snapshot() == (3, {"churn": _doc(2500), "fraud": _doc(0)})
    row = s.history("churn")
    assert row is not None and (row["actor"], row["reason"], row["run_id"]) == ("alice", "canary 25%", None)

    # the same document again writes nothing and answers the model's generation (idempotent step)
    assert s.put("churn", _doc(2500), actor="alice", reason="retry") == 3
    assert s.generation() == 3

    # removal: a new generation, the model leaves the snapshot
    assert s.delete("fraud", actor="bob", reason="retired") == 4
    assert s.snapshot() == (4, {"churn": _doc(2500)}) and s.get("fraud") is None
    assert s.delete("fraud", actor="bob", reason="again") == 4

    # every change has exactly one audit record, chained and verified by include.registry.audit
    recs = audit.read_records(backend.url)
    assert [(r.actor, r.action, r.subject) for r in recs] == [
        ("alice", "routes.put", "routes:churn"),
        ("bob", "routes.put", "routes:fraud"),
        ("alice", "routes.put", "routes:churn"),
        ("bob", "routes.delete", "routes:fraud"),
    ]
    assert recs[2].before == _doc(500) and recs[2].after == _doc(2500) and recs[0].run_id == "run-1"
    res = audit.verify(backend.url)
    assert res.ok and res.records == 4 and res.notes == [], res


def test_route_stores_and_other_audit_writers_share_one_chain(backend, _own_secrets):
    s = _store(backend.url, _own_secrets)
    s.put("churn", _doc(100), actor="a", reason="r")
    audit.append_audit("carol", "set_alias", "models:/churn@champion", None, {"version": "2"}, url=backend.url)
    s.put("churn", _doc(200), actor="a", reason="r")
    assert [r.id for r in audit.read_records(backend.url)] == [1, 2, 3]
    assert audit.verify(backend.url).ok


def test_a_decision_without_route_change_is_recorded_in_the_same_chain_and_changes_no_generation(backend, _own_secrets):
    s = _store(backend.url, _own_secrets)
    gen = s.put("churn", _doc(100), actor="a", reason="r")
    seq = s.record("router-residency@h", "residency.refused", "routes:churn", {"region": "me-central-1"})
    assert seq == 2 and s.generation() == gen
    rec = audit.read_records(backend.url)[-1]
    assert (rec.actor, rec.action, rec.subject, rec.after) == (
        "router-residency@h", "residency.refused", "routes:churn", {"region": "me-central-1"})
    res = audit.verify(backend.url)
    assert res.ok and res.records == 2 and res.notes == [], res


def test_seeding_writes_only_models_the_store_never_held(backend, _own_secrets):
    s = _store(backend.url, _own_secrets)
    s.put("churn", _doc(3000), actor="admin", reason="live change")
    g = s.apply({"churn": _doc(0), "fraud": _doc(0)}, actor="router-seed", reason="routes file",
                only_missing=True)
    assert g == 2
    assert s.snapshot() == (2, {"churn": _doc(3000), "fraud": _doc(0)})  # the live change survives
    assert s.apply({"churn": _doc(0)}, actor="router-seed", reason="again", only_missing=True) == 1


def test_a_failed_audit_append_leaves_no_route_change(tmp_path, _own_secrets):
    url = f"sqlite:///{tmp_path / 'control.db'}"
    s = _store(url, _own_secrets)
    s.put("churn", _doc(500), actor="a", reason="r")
    conn = sqlite3.connect(tmp_path / "control.db")
    conn.execute("CREATE TRIGGER no_audit BEFORE INSERT ON audit_log BEGIN SELECT RAISE(ABORT, 'audit refused'); END")
    conn.commit()
    with pytest.raises(ControlError, match="audit refused"):
        s.put("churn", _doc(9000), actor="a", reason="r")
    # neither the row nor the counter moved: the change and its audit record are one transaction
    assert s.snapshot() == (1, {"churn": _doc(500)}) and s.generation() == 1
    conn.execute("DROP TRIGGER no_audit")
    conn.commit()
    conn.close()
    assert s.put("churn", _doc(9000), actor="a", reason="r") == 2


def test_unreachable_store_raises_store_unavailable(tmp_path, _own_secrets):
    s = _store(f"postgresql+psycopg://nobody@127.0.0.1:{free_port()}/none", _own_secrets)
    with pytest.raises(StoreUnavailable, match=r"127\.0\.0\.1"):
        s.generation()
    with pytest.raises(StoreUnavailable):
        s.put("churn", _doc(0), actor="a", reason="r")


WRITER = """
import sys
from modelgate_control.store import RouteStore
from pathlib import Path
url, key, k, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
s = RouteStore(url, key_file=Path(key))
gens = []
for i in range(n):
    doc = {"variants": [{"name": "champion", "uri": f"/m/{k}-{i}.onnx", "weight_bp": 10000}]}
    gens.append(s.put(f"model{int(k) % 2}", doc, actor=f"w{k}", reason=str(i)))
print(",".join(map(str, gens)))
"""


def test_concurrent_puts_from_several_processes_all_land_with_distinct_generations(backend, tmp_path, _own_secrets):
    _store(backend.url, _own_secrets).generation()  # schema first, so the writers race on changes only
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    writers, n = 4, 15
    procs = [
        subprocess.Popen([sys.executable, str(script), backend.url, str(_own_secrets / "audit-hmac.key"), str(k),
                          str(n)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        for k in range(writers)
    ]
    gens: list[int] = []
    for p in procs:
        out, err = p.communicate(timeout=240)
        assert p.returncode == 0, err[-2000:]
        mine = [int(x) for x in out.strip().split(",")]
        assert mine == sorted(mine) and len(set(mine)) == n  # each writer sees its changes in order
        gens += mine
    assert sorted(gens) == list(range(1, writers * n + 1))  # distinct, no gap, none lost
    s = _store(backend.url, _own_secrets)
    assert s.generation() == writers * n
    res = audit.verify(backend.url)
    assert res.ok and res.records == writers * n, res
    # each model's row holds the document of the change with the highest generation
    last = {}
    for r in audit.read_records(backend.url):
        last[r.subject.split(":")[1]] = r.after
    assert s.snapshot()[1] == last
    assert json.dumps(last, sort_keys=True).count("champion") == 2


def test_the_domain_library_store_signs_with_the_secrets_folder_key(tmp_path, _own_secrets):
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    s = audit.route_store(url)
    assert s is audit.route_store(url) and s.key_file == _own_secrets / "audit-hmac.key"
    s.put("churn", _doc(0), actor="airflow:canary_promotion", reason="stage 1", run_id="r1")
    audit.append_audit("airflow:canary_promotion", "set_alias", "models:/churn@champion", None, {"v": 2}, url=url)
    res = audit.verify(url)  # one chain and one head anchor, whichever API wrote
    assert res.ok and res.records == 2 and res.notes == [], res
