"""Append-only, hash-chained audit log of every change to the registry, routes and approvals.

Each record stores the hash of the previous record; ``verify`` recomputes the chain and reports
any edited, inserted or deleted record. A UNIQUE constraint on ``prev_hash`` makes two concurrent
appends on the same head impossible (the loser retries on the new head). ``audit_head`` keeps the
count and last hash, written in the same transaction, so deleting the newest records is detected too.

CLI: ``python -m include.registry.audit verify`` (also ``modelgate audit verify``) and ``... tail``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import sys
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError as SAIntegrityError
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from include.config import get_settings
from include.registry.errors import AuditError

log = logging.getLogger(__name__)

GENESIS = "0" * 64

metadata = sa.MetaData()
audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("ts", sa.String(40), nullable=False),
    sa.Column("actor", sa.String(200), nullable=False),
    sa.Column("action", sa.String(100), nullable=False),
    sa.Column("subject", sa.String(300), nullable=False),
    sa.Column("before", sa.Text, nullable=False),
    sa.Column("after", sa.Text, nullable=False),
    sa.Column("run_id", sa.String(300), nullable=True),
    sa.Column("prev_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("hash", sa.String(64), nullable=False, unique=True),
)
audit_head = sa.Table(
    "audit_head",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("count", sa.Integer, nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
)

_SQLITE_GUARDS = (
    "CREATE TRIGGER IF NOT EXISTS audit_log_no_update BEFORE UPDATE ON audit_log "
    "BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END",
    "CREATE TRIGGER IF NOT EXISTS audit_log_no_delete BEFORE DELETE ON audit_log "
    "BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END",
)


@dataclass(frozen=True)
class AuditRecord:
    """One audit record as stored."""

    id: int
    ts: str
    actor: str
    action: str
    subject: str
    before: Any
    after: Any
    run_id: str | None
    prev_hash: str
    hash: str


@dataclass(frozen=True)
class VerifyResult:
    """Outcome of :func:`verify`: ``ok`` and the problems found (empty when ok)."""

    ok: bool
    records: int
    problems: list[str]


_engines: dict[str, sa.Engine] = {}
_engines_lock = threading.Lock()


def get_engine(url: str | None = None) -> sa.Engine:
    """Return a (cached) engine for the audit database, creating the schema on first use."""
    url = url or get_settings().resolved_audit_db_url()
    with _engines_lock:
        return _engines.get(url) or _create_engine(url)


def _create_engine(url: str) -> sa.Engine:
    connect_args = {"timeout": 30} if url.startswith("sqlite") else {}
    engine = sa.create_engine(url, connect_args=connect_args)
    try:
        metadata.create_all(engine)
        if engine.dialect.name == "sqlite":
            with engine.begin() as conn:
                for stmt in _SQLITE_GUARDS:
                    conn.exec_driver_sql(stmt)
    except SQLAlchemyError as e:
        raise AuditError(f"cannot open audit database {engine.url!r}: {e}") from e
    _engines[url] = engine
    return engine


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def record_hash(
    prev_hash: str,
    ts: str,
    actor: str,
    action: str,
    subject: str,
    before: str,
    after: str,
    run_id: str | None,
) -> str:
    """Return the sha256 that chains a record to its predecessor."""
    payload = _canonical([prev_hash, ts, actor, action, subject, before, after, run_id])
    return hashlib.sha256(payload.encode()).hexdigest()


def append_audit(
    actor: str,
    action: str,
    subject: str,
    before: Any = None,
    after: Any = None,
    run_id: str | None = None,
    url: str | None = None,
    retries: int = 20,
) -> AuditRecord:
    """Append one record to the audit log and return it.

    Args:
        actor: who made the change (user, token name or ``airflow:<dag_id>``).
        action: what kind of change (``register``, ``set_alias``, ``routes.put``...).
        subject: what changed (``models:/churn/3``, ``routes:churn``).
        before: state before the change (JSON-serialisable).
        after: state after the change (JSON-serialisable).
        run_id: the Airflow run id, when the change came from a DAG run.
        url: audit database URL (defaults to settings).
        retries: attempts when a concurrent writer took the head first.

    Returns:
        The stored record.

    Raises:
        AuditError: the record could not be written.
    """
    engine = get_engine(url)
    before_s, after_s = _canonical(before), _canonical(after)
    for _ in range(retries):
        ts = datetime.now(UTC).isoformat()
        try:
            with engine.begin() as conn:
                head = conn.execute(sa.select(audit_head.c.count, audit_head.c.hash)).first()
                count, prev = (int(head[0]), str(head[1])) if head else (0, GENESIS)
                h = record_hash(prev, ts, actor, action, subject, before_s, after_s, run_id)
                res = conn.execute(
                    audit_log.insert().values(
                        ts=ts,
                        actor=actor,
                        action=action,
                        subject=subject,
                        before=before_s,
                        after=after_s,
                        run_id=run_id,
                        prev_hash=prev,
                        hash=h,
                    )
                )
                if head:
                    upd = conn.execute(
                        audit_head.update()
                        .where(audit_head.c.id == 1, audit_head.c.hash == prev)
                        .values(count=count + 1, hash=h)
                    )
                    if upd.rowcount != 1:
                        raise SAIntegrityError("head moved", None, Exception("head moved"))
                else:
                    conn.execute(audit_head.insert().values(id=1, count=1, hash=h))
                rid = int(res.inserted_primary_key[0])  # type: ignore[index]
            log.info("audit %s %s by %s", action, subject, actor)
            return AuditRecord(rid, ts, actor, action, subject, before, after, run_id, prev, h)
        except SAIntegrityError:
            continue  # a concurrent writer appended first: retry on the new head
        except OperationalError as e:
            if "locked" not in str(e):
                raise AuditError(f"cannot append to audit log: {e}") from e
            time.sleep(0.05)  # SQLite writer lock held by another process: retry
            continue
        except SQLAlchemyError as e:
            raise AuditError(f"cannot append to audit log: {e}") from e
    raise AuditError(f"cannot append to audit log: head kept moving after {retries} attempts")


def read_records(url: str | None = None, limit: int | None = None) -> list[AuditRecord]:
    """Return audit records in order (the newest ``limit`` when given)."""
    engine = get_engine(url)
    q = sa.select(audit_log).order_by(audit_log.c.id)
    with engine.connect() as conn:
        rows = conn.execute(q).all()
    if limit is not None:
        rows = rows[-limit:]
    return [
        AuditRecord(
            r.id,
            r.ts,
            r.actor,
            r.action,
            r.subject,
            json.loads(r.before),
            json.loads(r.after),
            r.run_id,
            r.prev_hash,
            r.hash,
        )
        for r in rows
    ]


def verify(url: str | None = None) -> VerifyResult:
    """Recompute the hash chain and report every record that was edited, inserted or deleted."""
    engine = get_engine(url)
    problems: list[str] = []
    with engine.connect() as conn:
        rows = conn.execute(sa.select(audit_log).order_by(audit_log.c.id)).all()
        head = conn.execute(sa.select(audit_head.c.count, audit_head.c.hash)).first()
    prev = GENESIS
    for r in rows:
        if r.prev_hash != prev:
            problems.append(f"record {r.id}: chain broken (a record before it was deleted or inserted)")
        expected = record_hash(r.prev_hash, r.ts, r.actor, r.action, r.subject, r.before, r.after, r.run_id)
        if expected != r.hash:
            problems.append(f"record {r.id}: content does not match its hash (edited)")
        prev = r.hash
    if head is None:
        if rows:
            problems.append("audit head is missing")
    else:
        if int(head[0]) != len(rows):
            problems.append(f"head says {head[0]} records, the log has {len(rows)} (records deleted?)")
        if str(head[1]) != prev:
            problems.append("head hash does not match the last record (newest records deleted or edited?)")
    return VerifyResult(ok=not problems, records=len(rows), problems=problems)


def main(argv: list[str] | None = None) -> int:
    """CLI entry point: ``verify`` or ``tail``."""
    parser = argparse.ArgumentParser(prog="modelgate audit", description="modelgate audit log")
    parser.add_argument(
        "--db", default=None, help="SQLAlchemy URL (default: MODELGATE_AUDIT_DB_URL or .local)"
    )
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("verify", help="check the hash chain; exit 1 when a record was edited or deleted")
    t = sub.add_parser("tail", help="print the newest records as JSON lines")
    t.add_argument("-n", type=int, default=20)
    args = parser.parse_args(argv)
    try:
        if args.cmd == "verify":
            res = verify(args.db)
            if res.ok:
                print(f"audit log OK: {res.records} records, chain intact")
                return 0
            print(f"audit log TAMPERED: {len(res.problems)} problem(s) in {res.records} records")
            for p in res.problems:
                print(f"  - {p}")
            return 1
        for rec in read_records(args.db, limit=args.n):
            print(json.dumps(rec.__dict__, default=str))
        return 0
    except AuditError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
