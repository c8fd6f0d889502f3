"""Append-only, HMAC-chained audit log of every change to the registry, routes and approvals.

Records are numbered 1, 2, 3... without gaps (``seq`` is the primary key, so two concurrent appends
on the same head collide and the loser retries). Each record's MAC is an HMAC-SHA256, under a key
kept in the secrets folder (never in the database), of its number, the previous record's MAC and
its content. After each append the head (count + last MAC) is anchored in a file next to the key
(:mod:`include.registry.audit_anchor`). ``verify`` names the first bad record when one was edited,
re-signed with another key, reordered, deleted (also the newest ones) or when the log was emptied.

Append-only is also enforced by the database: triggers on SQLite and PostgreSQL, and on PostgreSQL
a writer role that holds only INSERT and SELECT (:func:`setup_postgres`).

The table, the record MAC and the append within a transaction are :mod:`modelgate_control.audit`
(the router appends route changes in the same transaction as the route row); this module adds the
engine cache, ``append_audit``, reading, verification and the CLI.

CLI: ``python -m include.registry.audit verify`` (also ``modelgate audit verify``), ``tail`` and
``setup-postgres``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError as SAIntegrityError
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from include.config import get_settings
from include.registry import audit_anchor as anchor
from include.registry.errors import AuditError
from modelgate_control import ControlError
from modelgate_control.audit import GENESIS, AuditRecord, append_in, record_mac
from modelgate_control.schema import (
    PG_GUARDS,
    audit_log,
    ensure_schema,
    insert_ignore,
    make_engine,
    metadata,
    routes_generation,
)
from modelgate_control.store import RouteStore

log = logging.getLogger(__name__)

__all__ = ["GENESIS", "AuditRecord", "append_audit", "audit_log", "metadata", "read_records", "record_mac", "route_store",
           "verify"]


@dataclass(frozen=True)
class VerifyResult:
    """Outcome of :func:`verify`: ``ok``, the problems found (empty when ok) and notes."""

    ok: bool
    records: int
    problems: list[str]
    notes: list[str]


_engines: dict[str, sa.Engine] = {}
_engines_lock = threading.Lock()


def _url(url: str | None) -> str:
    return url or get_settings().resolved_audit_db_url()


def get_engine(url: str | None = None) -> sa.Engine:
    """Return a (cached) engine for the audit database, creating the schema on first use."""
    url = _url(url)
    with _engines_lock:
        return _engines.get(url) or _create_engine(url)


def _connect_args(url: str) -> dict[str, Any]:
    return {"timeout": 30} if url.startswith("sqlite") else {}


def _create_engine(url: str) -> sa.Engine:
    engine = make_engine(url)
    try:
        insp = sa.inspect(engine)
        if insp.has_table("audit_log") and "mac" not in {c["name"] for c in insp.get_columns("audit_log")}:
            raise AuditError(
                f"audit database {engine.url!r} holds the old unkeyed audit_log: move it away to start a keyed log"
            )
        ensure_schema(engine)
    except (SQLAlchemyError, ControlError) as e:
        raise AuditError(f"cannot open audit database {engine.url!r}: {e}") from e
    _engines[url] = engine
    return engine


def _install_guards(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        for stmt in PG_GUARDS:
            conn.exec_driver_sql(stmt)


def setup_postgres(admin_url: str, writer_role: str) -> None:
    """Create the control-plane tables on PostgreSQL with the audit guards; ``writer_role`` may only
    INSERT+SELECT the audit log (and SELECT/INSERT/UPDATE the desired routes).

    Run it as the table's owner (not as the writer): the writer can then neither update, delete nor
    truncate records, nor drop the triggers; the owner is stopped by the triggers.

    Raises:
        AuditError: not a PostgreSQL URL, an invalid role name, or the database refused.
    """
    if not writer_role.replace("_", "").isalnum():
        raise AuditError(f"invalid role name {writer_role!r}: letters, digits and _ only")
    engine = sa.create_engine(admin_url)
    try:
        if engine.dialect.name != "postgresql":
            raise AuditError(f"setup-postgres needs a postgresql:// URL, got {engine.dialect.name}")
        metadata.create_all(engine)
        _install_guards(engine)
        with engine.begin() as conn:
            conn.execute(insert_ignore(routes_generation, "postgresql", id=1, generation=0))
            conn.exec_driver_sql(f'GRANT SELECT, INSERT ON audit_log TO "{writer_role}"')
            # the desired routes live in the same database: their rows change, the audit log never does
            conn.exec_driver_sql(f'GRANT SELECT, INSERT, UPDATE ON desired_routes, routes_generation TO "{writer_role}"')
    except SQLAlchemyError as e:
        raise AuditError(f"cannot set up the audit log on {engine.url!r}: {e}") from e
    finally:
        engine.dispose()


def append_audit(
    actor: str,
    action: str,
    subject: str,
    before: Any = None,
    after: Any = None,
    run_id: str | None = None,
    url: str | None = None,
    retries: int = 50,
) -> AuditRecord:
    """Append one record to the audit log and return it.

    Args:
        actor: who made the change (authenticated user, API client or ``airflow:<dag_id>``).
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
    url = _url(url)
    engine = get_engine(url)
    key = anchor.load_key(create=True)
    for _ in range(retries):
        try:
            with engine.begin() as conn:
                rec = append_in(conn, key, actor, action, subject, before, after, run_id)
        except SAIntegrityError:
            continue  # a concurrent writer took this number: retry on the new head
        except OperationalError as e:
            if "locked" not in str(e):
                raise AuditError(f"cannot append to audit log: {e}") from e
            time.sleep(0.02)  # SQLite writer lock held by another connection: retry
            continue
        except SQLAlchemyError as e:
            raise AuditError(f"cannot append to audit log: {e}") from e
        anchor.advance_head(key, url, anchor.Head(rec.id, rec.mac))
        log.info("audit #%d %s %s by %s", rec.id, action, subject, actor)
        return rec
    raise AuditError(f"cannot append to audit log: head kept moving after {retries} attempts")


_stores: dict[str, RouteStore] = {}


def route_store(url: str | None = None) -> RouteStore:
    """Return the (cached) routes store in the audit database, signing with the secrets folder's audit key.

    This is how the domain library (gates, reconcile) reads and writes desired routes: the same
    database, key and head anchor as :func:`append_audit`, so route changes and other records form one
    chain.

    Args:
        url: audit database URL (defaults to settings).

    Returns:
        The store.
    """
    url = _url(url)
    with _engines_lock:
        store = _stores.get(url)
        if store is None:
            store = _stores[url] = RouteStore(url, key_file=anchor.secrets_dir() / anchor.KEY_FILE)
        return store


def _existing_engine(url: str) -> sa.Engine:
    """Open ``url`` for reading without creating anything; refuse a missing database or table."""
    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() == "sqlite":
        from pathlib import Path

        if not parsed.database or parsed.database == ":memory:" or not Path(parsed.database).is_file():
            raise AuditError(f"audit database {parsed.database!r} does not exist (wrong MODELGATE_HOME or --db?)")
        url = f"sqlite:///file:{parsed.database}?mode=ro&uri=true"
    engine = sa.create_engine(url, connect_args=_connect_args(url))
    try:
        if not sa.inspect(engine).has_table("audit_log"):
            raise AuditError(f"{parsed.render_as_string(hide_password=True)} has no audit_log table")
    except SQLAlchemyError as e:
        raise AuditError(f"cannot open audit database {parsed.render_as_string(hide_password=True)}: {e}") from e
    return engine


def _rows(url: str) -> list[Any]:
    engine = _existing_engine(url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(sa.select(audit_log).order_by(audit_log.c.seq)).all())
    except SQLAlchemyError as e:
        raise AuditError(f"cannot read audit log: {e}") from e
    finally:
        engine.dispose()


def read_records(url: str | None = None, limit: int | None = None) -> list[AuditRecord]:
    """Return audit records in order (the newest ``limit`` when given)."""
    rows = _rows(_url(url))
    if limit is not None:
        rows = rows[-limit:] if limit > 0 else []
    return [
        AuditRecord(
            r.seq, r.ts, r.actor, r.action, r.subject, json.loads(r.before), json.loads(r.after), r.run_id,
            r.prev_mac, r.mac,
        )
        for r in rows
    ]


def _first_bad_record(key: bytes, rows: list[Any]) -> str | None:
    prev = GENESIS
    for i, r in enumerate(rows, start=1):
        if int(r.seq) != i:
            return f"record {i}: missing or out of order (found record numbered {r.seq} in its place)"
        if r.prev_mac != prev:
            return f"record {i}: does not chain to record {i - 1} (a record was removed, inserted or reordered)"
        fields = (r.ts, r.actor, r.action, r.subject, r.before, r.after, r.run_id)
        if record_mac(key, int(r.seq), r.prev_mac, fields) != r.mac:
            return f"record {i}: MAC does not verify with the audit key (edited, or written with another key)"
        prev = r.mac
    return None


def verify(url: str | None = None) -> VerifyResult:
    """Check the chain against the key and the head anchor; name the first bad record.

    Raises:
        AuditError: the database or its key is missing, or the log is empty and was never anchored
            (nothing to verify).
    """
    url = _url(url)
    rows = _rows(url)
    key = anchor.load_key(create=False)
    problems: list[str] = []
    notes: list[str] = []
    try:
        head = anchor.read_head(key, url)
    except AuditError as e:
        problems.append(str(e))
        head = None
    if not rows and head is None and not problems:
        raise AuditError("the audit log is empty and no head was ever anchored: nothing to verify")
    bad = _first_bad_record(key, rows)
    if bad:
        problems.append(bad)
    if head is None and not problems:
        problems.append(f"head anchor {anchor.anchor_path(url)} is missing: cannot tell whether records were deleted")
    elif head is not None:
        n = len(rows)
        if head.count > n:
            problems.append(
                f"record {n + 1}: missing; the head anchor says {head.count} records, the log ends at {n}"
                + (" (the log was emptied)" if n == 0 else " (newest records deleted)")
            )
        elif rows[head.count - 1].mac != head.mac:
            problems.append(f"record {head.count}: does not match the head anchor")
        elif head.count < n:
            notes.append(f"head anchor lags by {n - head.count} record(s) (a writer stopped after commit)")
    return VerifyResult(ok=not problems, records=len(rows), problems=problems, notes=notes)


def main(argv: list[str] | None = None) -> int:
    """CLI entry point: ``verify``, ``tail`` or ``setup-postgres``."""
    parser = argparse.ArgumentParser(prog="modelgate audit", description="modelgate audit log")
    parser.add_argument("--db", default=None, help="SQLAlchemy URL (default: MODELGATE_AUDIT_DB_URL or <home>)")
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("verify", help="check chain, key and head anchor; exit 1 when tampered")
    t = sub.add_parser("tail", help="print the newest records as JSON lines")
    t.add_argument("-n", type=int, default=20)
    sp = sub.add_parser("setup-postgres", help="create the table, triggers and privileges (run as owner)")
    sp.add_argument("--writer-role", required=True, help="role that may only INSERT and SELECT")
    args = parser.parse_args(argv)
    try:
        if args.cmd == "verify":
            res = verify(args.db)
            for note in res.notes:
                print(f"note: {note}")
            if res.ok:
                print(f"audit log OK: {res.records} records, chain and head anchor intact")
                return 0
            print(f"audit log TAMPERED: {len(res.problems)} problem(s) in {res.records} records")
            for p in res.problems:
                print(f"  - {p}")
            return 1
        if args.cmd == "setup-postgres":
            setup_postgres(args.db or _url(None), args.writer_role)
            print(f"audit log ready; {args.writer_role} may INSERT and SELECT only")
            return 0
        for rec in read_records(args.db, limit=args.n):
            print(json.dumps(rec.__dict__, default=str))
        return 0
    except AuditError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
