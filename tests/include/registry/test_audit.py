from __future__ import annotations

import itertools
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from support import REPO

from include.registry import audit


@pytest.fixture
def db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'audit.db'}"


def _fill(db: str, n: int = 5) -> None:
    for i in range(n):
        audit.append_audit("alice", "set_alias", "models:/churn@champion", {"version": str(i)}, {"version": str(i + 1)}, f"run-{i}", url=db)


def test_records_chain_to_their_predecessor_and_verify_passes(db: str) -> None:
    _fill(db)
    recs = audit.read_records(db)
    assert [r.id for r in recs] == [1, 2, 3, 4, 5]
    assert recs[0].prev_hash == audit.GENESIS
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(recs))
    assert recs[2].after == {"version": "3"}
    res = audit.verify(db)
    assert res.ok and res.records == 5 and res.problems == []


def test_the_log_refuses_updates_and_deletes_through_sql(db: str, tmp_path: Path) -> None:
    _fill(db, 2)
    conn = sqlite3.connect(tmp_path / "audit.db")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        conn.execute("UPDATE audit_log SET actor='mallory' WHERE id=1")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        conn.execute("DELETE FROM audit_log WHERE id=1")


def _tamper(path: Path, sql: str) -> None:
    conn = sqlite3.connect(path)
    conn.execute("DROP TRIGGER audit_log_no_update")
    conn.execute("DROP TRIGGER audit_log_no_delete")
    conn.execute(sql)
    conn.commit()
    conn.close()


def test_verify_detects_an_edited_record(db: str, tmp_path: Path) -> None:
    _fill(db)
    _tamper(tmp_path / "audit.db", "UPDATE audit_log SET actor='mallory' WHERE id=3")
    res = audit.verify(db)
    assert not res.ok
    assert any("record 3" in p and "edited" in p for p in res.problems)


def test_verify_detects_a_deleted_middle_record(db: str, tmp_path: Path) -> None:
    _fill(db)
    _tamper(tmp_path / "audit.db", "DELETE FROM audit_log WHERE id=2")
    res = audit.verify(db)
    assert not res.ok
    assert any("record 3" in p and "chain broken" in p for p in res.problems)


def test_verify_detects_deleting_the_newest_record(db: str, tmp_path: Path) -> None:
    _fill(db)
    _tamper(tmp_path / "audit.db", "DELETE FROM audit_log WHERE id=5")
    res = audit.verify(db)
    assert not res.ok
    assert any("head" in p for p in res.problems)


def test_cli_verify_exits_1_and_reports_tampering(db: str, tmp_path: Path) -> None:
    _fill(db)
    ok = subprocess.run([sys.executable, "-m", "include.registry.audit", "--db", db, "verify"],
                        capture_output=True, text=True, cwd=REPO)
    assert ok.returncode == 0, ok.stderr
    assert "5 records" in ok.stdout
    _tamper(tmp_path / "audit.db", "UPDATE audit_log SET after='{}' WHERE id=4")
    bad = subprocess.run([sys.executable, "-m", "include.registry.audit", "--db", db, "verify"],
                         capture_output=True, text=True, cwd=REPO)
    assert bad.returncode == 1
    assert "TAMPERED" in bad.stdout and "record 4" in bad.stdout


def test_concurrent_appends_keep_one_unbroken_chain(db: str) -> None:
    errors: list[BaseException] = []

    def worker(k: int) -> None:
        try:
            for i in range(10):
                audit.append_audit(f"w{k}", "x", "s", None, {"i": i}, url=db)
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    res = audit.verify(db)
    assert res.ok and res.records == 40


def test_unwritable_database_is_a_clear_audit_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(audit.AuditError, match="audit"):
        audit.append_audit("a", "b", "c", url=f"sqlite:///{blocker}/sub/audit.db")
