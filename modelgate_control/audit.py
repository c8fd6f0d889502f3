"""The core of the HMAC-chained audit log: record MAC, append within a connection, key and head anchor.

Records are numbered 1, 2, 3... without gaps (``seq`` is the primary key, so two concurrent appends
on the same head collide and the caller retries its transaction). Each record's MAC is an
HMAC-SHA256, under a key kept in a secrets folder (never in the database), of its number, the
previous record's MAC and its content. After each committed append the head (count + last MAC) is
anchored in a file next to the key. Verification and the CLI live in ``include.registry.audit``.
"""

from __future__ import annotations

import fcntl
import hashlib
import hmac
import json
import logging
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from modelgate_control import AuditError
from modelgate_control.schema import audit_log

log = logging.getLogger(__name__)

GENESIS = "0" * 64
KEY_FILE = "audit-hmac.key"


@dataclass(frozen=True)
class AuditRecord:
    """One audit record as stored; ``id`` is its number in the chain (1, 2, 3...)."""

    id: int
    ts: str
    actor: str
    action: str
    subject: str
    before: Any
    after: Any
    run_id: str | None
    prev_mac: str
    mac: str


@dataclass(frozen=True)
class Head:
    """The anchored head of the chain: how many records, and the MAC of the last one."""

    count: int
    mac: str


def canonical(value: Any) -> str:
    """Return the JSON text a value is stored (and MAC'd) as."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def mac(key: bytes, payload: str) -> str:
    """Return the hex HMAC-SHA256 of ``payload`` under ``key``."""
    return hmac.new(key, payload.encode(), hashlib.sha256).hexdigest()


def record_mac(key: bytes, seq: int, prev_mac: str, fields: tuple[str, str, str, str, str, str, str | None]) -> str:
    """Return the HMAC that binds record ``seq`` to its content and its predecessor.

    Args:
        key: the audit key.
        seq: the record's number.
        prev_mac: the previous record's MAC (``GENESIS`` for record 1).
        fields: ts, actor, action, subject, before, after (as stored, JSON text) and run_id.
    """
    return mac(key, canonical([seq, prev_mac, *fields]))


def append_in(
    conn: sa.Connection,
    key: bytes,
    actor: str,
    action: str,
    subject: str,
    before: Any = None,
    after: Any = None,
    run_id: str | None = None,
) -> AuditRecord:
    """Append one record inside the caller's transaction (it commits or rolls back with it).

    A concurrent writer that took the same number makes the commit fail with an ``IntegrityError``:
    the caller retries its whole transaction.

    Args:
        conn: a connection inside a transaction.
        key: the audit key.
        actor: who made the change.
        action: what kind of change (``routes.put``, ``set_alias``...).
        subject: what changed (``routes:churn``, ``models:/churn/3``).
        before: state before (JSON-serialisable).
        after: state after (JSON-serialisable).
        run_id: the Airflow run id, when the change came from a DAG run.

    Returns:
        The record as it will be stored.
    """
    ts = datetime.now(UTC).isoformat()
    before_s, after_s = canonical(before), canonical(after)
    last = conn.execute(
        sa.select(audit_log.c.seq, audit_log.c.mac).order_by(audit_log.c.seq.desc()).limit(1)
    ).first()
    seq, prev = (int(last[0]) + 1, str(last[1])) if last else (1, GENESIS)
    m = record_mac(key, seq, prev, (ts, actor, action, subject, before_s, after_s, run_id))
    conn.execute(
        audit_log.insert().values(
            seq=seq, ts=ts, actor=actor, action=action, subject=subject, before=before_s,
            after=after_s, run_id=run_id, prev_mac=prev, mac=m,
        )
    )
    return AuditRecord(seq, ts, actor, action, subject, before, after, run_id, prev, m)


# ---------------------------------------------------------------------- key and head anchor files


def write_secret_file(path: Path, data: bytes) -> bool:
    """Create ``path`` with ``data``, mode 0600 from its first byte; return False if it exists.

    Written complete under a private name, then linked in: readers never see it empty or partial.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        return True
    finally:
        tmp.unlink(missing_ok=True)


def load_key(path: Path, create: bool) -> bytes:
    """Return the audit HMAC key at ``path``, creating it (and a 0700 folder) when ``create``.

    Raises:
        AuditError: the key is missing (and ``create`` is False), unreadable, or malformed.
    """
    if create and not path.exists():  # an existing key may sit in a read-only folder (a mounted Secret)
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        if write_secret_file(path, secrets.token_hex(32).encode()):
            log.info("created audit key %s", path)
    try:
        raw = path.read_text().strip()
    except FileNotFoundError as e:
        raise AuditError(f"no audit key at {path}: cannot verify the audit log without it") from e
    except OSError as e:
        raise AuditError(f"cannot read audit key {path}: {e}") from e
    try:
        key = bytes.fromhex(raw)
    except ValueError as e:
        raise AuditError(f"audit key {path} is not hex") from e
    if len(key) < 32:
        raise AuditError(f"audit key {path} is shorter than 32 bytes")
    return key


def anchor_path(folder: Path, url: str) -> Path:
    """Return the head-anchor file of the audit database at ``url`` (password left out of the name)."""
    safe = make_url(url).render_as_string(hide_password=True)
    fp = hashlib.sha256(safe.encode()).hexdigest()[:16]
    return folder / f"audit-head-{fp}.json"


def _head_mac(key: bytes, url: str, head: Head) -> str:
    safe = make_url(url).render_as_string(hide_password=True)
    return mac(key, json.dumps(["head", safe, head.count, head.mac]))


def read_head(key: bytes, folder: Path, url: str) -> Head | None:
    """Return the anchored head of ``url``'s log, or None when no record was ever anchored.

    Raises:
        AuditError: the anchor file is unreadable, malformed, or its MAC does not verify.
    """
    path = anchor_path(folder, url)
    try:
        doc = json.loads(path.read_text())
        head = Head(int(doc["count"]), str(doc["mac"]))
        sig = str(doc["sig"])
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise AuditError(f"head anchor {path} is unreadable or malformed: {e}") from e
    if not hmac.compare_digest(sig, _head_mac(key, url, head)):
        raise AuditError(f"head anchor {path} does not verify with the audit key (forged or replaced)")
    return head


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    fd = os.open(path.with_suffix(".lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def advance_head(key: bytes, folder: Path, url: str, head: Head) -> None:
    """Move the anchor forward to ``head`` (never backwards), atomically under a file lock.

    Called after each committed append. A crash between the commit and this call leaves the anchor
    behind, which verification accepts because the extra records carry valid MACs; deleting records
    can never move the anchor back.
    """
    path = anchor_path(folder, url)
    with _locked(path):
        current = read_head(key, folder, url)
        if current is not None and current.count >= head.count:
            return
        doc = {"count": head.count, "mac": head.mac, "sig": _head_mac(key, url, head)}
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.unlink(missing_ok=True)
        write_secret_file(tmp, json.dumps(doc).encode())
        os.replace(tmp, path)
