"""Tables of the control-plane database, and engines that suit several processes at once.

One database holds the desired routes (one row per model), the global generation counter (one row)
and the audit log, so that a route change and its audit record commit in one transaction. On SQLite
the file runs in WAL mode with a busy timeout (readers never block the writer; writers queue); on
PostgreSQL row locks serialise writers.
"""

from __future__ import annotations

import logging
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import OperationalError, ProgrammingError, SQLAlchemyError

from modelgate_control import ControlError

log = logging.getLogger(__name__)

metadata = sa.MetaData()

audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("ts", sa.String(40), nullable=False),
    sa.Column("actor", sa.String(200), nullable=False),
    sa.Column("action", sa.String(100), nullable=False),
    sa.Column("subject", sa.String(300), nullable=False),
    sa.Column("before", sa.Text, nullable=False),
    sa.Column("after", sa.Text, nullable=False),
    sa.Column("run_id", sa.String(300), nullable=True),
    sa.Column("prev_mac", sa.String(64), nullable=False),
    sa.Column("mac", sa.String(64), nullable=False),
)

desired_routes = sa.Table(
    "desired_routes",
    metadata,
    sa.Column("model", sa.String(200), primary_key=True),
    sa.Column("document", sa.Text, nullable=True),  # JSON; NULL: the model was removed (a tombstone)
    sa.Column("generation", sa.BigInteger, nullable=False),
    sa.Column("actor", sa.String(200), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("run_id", sa.String(300), nullable=True),
    sa.Column("updated_at", sa.String(40), nullable=False),
)

routes_generation = sa.Table(
    "routes_generation",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("generation", sa.BigInteger, nullable=False),
)

SQLITE_GUARDS = (
    "CREATE TRIGGER IF NOT EXISTS audit_log_no_update BEFORE UPDATE ON audit_log "
    "BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END",
    "CREATE TRIGGER IF NOT EXISTS audit_log_no_delete BEFORE DELETE ON audit_log "
    "BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END",
)
PG_GUARDS = (
    "CREATE OR REPLACE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS "
    "$$ BEGIN RAISE EXCEPTION 'audit_log is append-only'; END $$",
    "CREATE OR REPLACE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON audit_log "
    "FOR EACH ROW EXECUTE FUNCTION audit_log_append_only()",
    "CREATE OR REPLACE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log "
    "FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only()",
    "REVOKE ALL ON audit_log FROM PUBLIC",
)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def make_engine(url: str, timeout_s: float = 30.0) -> sa.Engine:
    """Return an engine for the control-plane database.

    SQLite: WAL journal, 30 s busy timeout (several router processes share one file). PostgreSQL:
    pre-ping, so a connection the server dropped is replaced instead of failing a poll.

    Args:
        url: SQLAlchemy URL.
        timeout_s: connect timeout (PostgreSQL) or busy timeout (SQLite), seconds.

    Returns:
        The engine (nothing connected yet).
    """
    if url.startswith("sqlite"):
        engine = sa.create_engine(url, connect_args={"timeout": timeout_s})
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    args: dict[str, Any] = {}
    if url.startswith("postgresql"):
        args = {"connect_timeout": max(1, int(timeout_s))}
    return sa.create_engine(url, connect_args=args, pool_pre_ping=True)


def insert_ignore(table: sa.Table, dialect: str, **values: Any) -> Any:
    """An INSERT that does nothing when the primary key exists (SQLite and PostgreSQL)."""
    if dialect == "postgresql":
        return postgresql.insert(table).values(**values).on_conflict_do_nothing()
    return sqlite.insert(table).values(**values).on_conflict_do_nothing()


def ensure_schema(engine: sa.Engine) -> None:
    """Create the tables that are missing, the generation row, and the audit log's guards.

    Several processes may call this at once: a table another process created in between is fine.

    Raises:
        ControlError: the database refused (unreachable, no privilege to create the tables).
    """
    for attempt in range(3):
        try:
            insp = sa.inspect(engine)
            had_audit = insp.has_table("audit_log")
            missing = [t for t in metadata.sorted_tables if not insp.has_table(t.name)]
            if missing:
                metadata.create_all(engine, tables=missing)
            with engine.begin() as conn:
                if engine.dialect.name == "sqlite":
                    for stmt in SQLITE_GUARDS:
                        conn.exec_driver_sql(stmt)
                elif engine.dialect.name == "postgresql" and not had_audit:
                    for stmt in PG_GUARDS:
                        conn.exec_driver_sql(stmt)
                conn.execute(insert_ignore(routes_generation, engine.dialect.name, id=1, generation=0))
            return
        except (OperationalError, ProgrammingError) as e:
            if "already exists" in str(e) and attempt < 2:
                continue  # another process created it between our check and our CREATE
            raise ControlError(f"cannot prepare the control-plane database {_safe(engine)}: {e}") from e
        except SQLAlchemyError as e:
            raise ControlError(f"cannot prepare the control-plane database {_safe(engine)}: {e}") from e


def _safe(engine: sa.Engine) -> str:
    return engine.url.render_as_string(hide_password=True)
