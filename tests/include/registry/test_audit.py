"""The keyed audit chain on SQLite and on a real PostgreSQL: appends, guards, and every tamper case."""

from __future__ import annotations

import itertools
import json
import os
import secrets
import sqlite3
import stat
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from support import REPO
from support_postgres import Postgres

from include.registry import audit
from include.registry import audit_anchor as anchor


@dataclass
class Backend:
    """An audit database the writer appends to, and a way to run SQL past its guards."""

    url: str
    tamper: Callable[[str], None]


def _sqlite_backend(tmp_path: Path) -> Backend:
    path = tmp_path / "audit.db"

    def tamper(sql: str) -> None:
        conn = sqlite3.connect(path)
        conn.execute("DROP TRIGGER IF EXISTS audit_log_no_update")
        conn.execute("DROP TRIGGER IF EXISTS audit_log_no_delete")
        conn.executescript(sql)
        conn.commit()
        conn.close()

    return Backend(f"sqlite:///{path}", tamper)


def _pg_backend(pg: Postgres) -> Backend:
    db = pg.new_database()
    audit.setup_postgres(pg.url("audit_owner", db), "audit_writer")

    def tamper(sql: str) -> None:  # a superuser can switch the triggers off: the chain still tells
        res = pg.psql(f"ALTER TABLE audit_log DISABLE TRIGGER USER; {sql}; ALTER TABLE audit_log ENABLE TRIGGER USER",
                      db=db)
        assert res.returncode == 0, res.stderr

    return Backend(pg.url("audit_writer", db), tamper)


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "sqlite":
        return _sqlite_backend(tmp_path)
    return _pg_backend(request.getfixturevalue("postgres"))


def _fill(url: str, n: int = 5) -> None:
    for i in range(n):
        audit.append_audit("alice", "set_alias", "models:/churn@champion", {"version": str(i)},
                           {"version": str(i + 1)}, f"run-{i}", url=url)


def _first_problem(url: str) -> str:
    res = audit.verify(url)
    assert not res.ok, "verify passed a tampered log"
    return res.problems[0]


def test_records_are_numbered_without_gaps_chained_by_hmac_and_verify(backend: Backend) -> None:
    _fill(backend.url)
    recs = audit.read_records(backend.url)
    assert [r.id for r in recs] == [1, 2, 3, 4, 5]
    assert recs[0].prev_mac == audit.GENESIS
    assert all(b.prev_mac == a.mac for a, b in itertools.pairwise(recs))
    assert recs[2].after == {"version": "3"}
    res = audit.verify(backend.url)
    assert res.ok and res.records == 5 and res.problems == [] and res.notes == []


def test_the_mac_is_an_hmac_sha256_under_the_key_in_the_secrets_folder(tmp_path: Path, _own_secrets: Path) -> None:
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    _fill(url, 1)
    key_file = _own_secrets / anchor.KEY_FILE
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(_own_secrets.stat().st_mode) == 0o700
    rec = audit.read_records(url)[0]
    import hashlib
    import hmac

    payload = json.dumps([1, audit.GENESIS, rec.ts, "alice", "set_alias", "models:/churn@champion",
                          '{"version":"0"}', '{"version":"1"}', "run-0"], sort_keys=True, separators=(",", ":"))
    want = hmac.new(bytes.fromhex(key_file.read_text()), payload.encode(), hashlib.sha256).hexdigest()
    assert rec.mac == want
    conn = sqlite3.connect(tmp_path / "audit.db")
    assert key_file.read_text() not in repr(conn.execute("SELECT * FROM audit_log").fetchall())
    head = json.loads(anchor.anchor_path(url).read_text())
    assert head["count"] == 1 and head["mac"] == rec.mac


def test_verify_names_an_edited_record(backend: Backend) -> None:
    _fill(backend.url)
    backend.tamper("UPDATE audit_log SET actor='mallory' WHERE seq=3")
    assert _first_problem(backend.url).startswith("record 3: MAC does not verify")


def test_verify_names_record_1_when_the_whole_chain_is_recomputed_with_another_key(backend: Backend) -> None:
    _fill(backend.url)
    other = secrets.token_bytes(32)
    prev, stmts = audit.GENESIS, []
    for r in audit._rows(backend.url):
        m = audit.record_mac(other, r.seq, prev, (r.ts, r.actor, r.action, r.subject, r.before, r.after, r.run_id))
        stmts.append(f"UPDATE audit_log SET prev_mac='{prev}', mac='{m}' WHERE seq={r.seq}")
        prev = m
    backend.tamper("; ".join(stmts))
    assert _first_problem(backend.url).startswith("record 1: MAC does not verify")


def test_verify_names_the_deleted_last_record(backend: Backend) -> None:
    _fill(backend.url)
    backend.tamper("DELETE FROM audit_log WHERE seq=5")
    assert _first_problem(backend.url).startswith("record 5: missing; the head anchor says 5 records")


def test_a_head_anchor_fixed_without_the_key_is_refused(backend: Backend) -> None:
    _fill(backend.url)
    backend.tamper("DELETE FROM audit_log WHERE seq=5")
    four = audit.read_records(backend.url)[-1]
    path = anchor.anchor_path(backend.url)
    path.write_text(json.dumps({"count": 4, "mac": four.mac, "sig": "0" * 64}))
    assert "does not verify with the audit key" in _first_problem(backend.url)


def test_verify_names_record_1_when_the_log_is_emptied(backend: Backend) -> None:
    _fill(backend.url)
    backend.tamper("DELETE FROM audit_log")
    problem = _first_problem(backend.url)
    assert problem.startswith("record 1: missing") and "emptied" in problem


def test_verify_names_the_first_of_two_reordered_records(backend: Backend) -> None:
    _fill(backend.url)
    backend.tamper("UPDATE audit_log SET seq=-2 WHERE seq=2; UPDATE audit_log SET seq=2 WHERE seq=3; "
                   "UPDATE audit_log SET seq=3 WHERE seq=-2")
    assert _first_problem(backend.url).startswith("record 2:")


def test_sqlite_refuses_updates_and_deletes(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    _fill(url, 2)
    conn = sqlite3.connect(tmp_path / "audit.db")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        conn.execute("UPDATE audit_log SET actor='mallory' WHERE seq=1")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        conn.execute("DELETE FROM audit_log WHERE seq=1")


def test_postgres_writer_may_only_insert_and_select_and_the_owner_is_stopped_by_triggers(postgres: Postgres) -> None:
    db = postgres.new_database()
    audit.setup_postgres(postgres.url("audit_owner", db), "audit_writer")
    _fill(postgres.url("audit_writer", db), 2)
    for sql in ("UPDATE audit_log SET actor='m' WHERE seq=1", "DELETE FROM audit_log WHERE seq=2",
                "TRUNCATE audit_log", "ALTER TABLE audit_log DISABLE TRIGGER USER", "DROP TABLE audit_log"):
        res = postgres.psql(sql, db=db, role="audit_writer")
        assert res.returncode != 0 and ("permission denied" in res.stderr or "must be owner" in res.stderr), (sql, res)
    for sql in ("UPDATE audit_log SET actor='m' WHERE seq=1", "DELETE FROM audit_log WHERE seq=2", "TRUNCATE audit_log"):
        res = postgres.psql(sql, db=db, role="audit_owner")
        assert res.returncode != 0 and "append-only" in res.stderr, (sql, res)
    assert audit.verify(postgres.url("audit_writer", db)).ok


def test_concurrent_appends_keep_one_gapless_chain(backend: Backend) -> None:
    errors: list[BaseException] = []

    def worker(k: int) -> None:
        try:
            for i in range(10):
                audit.append_audit(f"w{k}", "x", "s", None, {"i": i}, url=backend.url)
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    res = audit.verify(backend.url)
    assert res.ok and res.records == 40, res
    assert [r.id for r in audit.read_records(backend.url)] == list(range(1, 41))


def _cli(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "include.registry.audit", *args], capture_output=True,
                          text=True, cwd=cwd, env={**os.environ, **(env or {})}, timeout=120)


def test_cli_verify_works_from_any_directory_and_exits_1_on_tampering(tmp_path: Path) -> None:
    b = _sqlite_backend(tmp_path)
    _fill(b.url)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    ok = _cli(["--db", b.url, "verify"], cwd=elsewhere)
    assert ok.returncode == 0 and "5 records" in ok.stdout, ok.stderr
    b.tamper("UPDATE audit_log SET after='{}' WHERE seq=4")
    bad = _cli(["--db", b.url, "verify"], cwd=elsewhere)
    assert bad.returncode == 1
    assert "TAMPERED" in bad.stdout and "record 4: MAC" in bad.stdout


def test_default_home_is_the_checkout_not_the_working_directory(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "MODELGATE_HOME"}
    res = subprocess.run([sys.executable, "-c", "from include.config import get_settings; print(get_settings().home)"],
                         capture_output=True, text=True, cwd=tmp_path, env=env, timeout=60)
    assert res.stdout.strip() == str(REPO / ".local"), res.stderr


def test_cli_verify_refuses_a_missing_database_without_creating_it(tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "audit.db"
    res = _cli(["--db", f"sqlite:///{missing}", "verify"], cwd=tmp_path)
    assert res.returncode == 2 and "does not exist" in res.stderr
    assert not missing.exists() and not missing.parent.exists()


def test_verify_refuses_an_empty_log_that_was_never_anchored(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    audit.get_engine(url)  # schema, no records
    with pytest.raises(audit.AuditError, match="empty"):
        audit.verify(url)
    res = _cli(["--db", url, "verify"], cwd=tmp_path)
    assert res.returncode == 2 and "empty" in res.stderr


def test_verify_refuses_without_the_key(tmp_path: Path, _own_secrets: Path) -> None:
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    _fill(url, 1)
    (_own_secrets / anchor.KEY_FILE).unlink()
    with pytest.raises(audit.AuditError, match="no audit key"):
        audit.verify(url)


def test_key_file_is_never_replaced_once_created(_own_secrets: Path) -> None:
    first = anchor.load_key(create=True)
    assert anchor.load_key(create=True) == first
    assert not anchor.write_secret_file(_own_secrets / anchor.KEY_FILE, b"00" * 32)


def test_unwritable_database_is_a_clear_audit_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(audit.AuditError, match="audit"):
        audit.append_audit("a", "b", "c", url=f"sqlite:///{blocker}/sub/audit.db")


def test_concurrent_first_use_creates_one_key_that_no_reader_sees_half_written(_own_secrets: Path) -> None:
    keys: list[bytes] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            keys.append(anchor.load_key(create=True))
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(keys) == 16 and len(set(keys)) == 1
    assert [p.name for p in _own_secrets.iterdir()] == [anchor.KEY_FILE], "no temporary file left"
