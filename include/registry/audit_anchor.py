"""The audit log's secrets: its HMAC key and its head anchor, both kept outside the database.

The key (32 random bytes, hex) lives in ``<secrets>/audit-hmac.key``; the head anchor (number of
records and MAC of the last one, itself MAC'd with the key) lives in
``<secrets>/audit-head-<fingerprint of the database URL>.json``. Both are created 0600 with no
window (``O_CREAT | O_EXCL`` with the mode), in a 0700 folder. Someone who can rewrite the database
but cannot read these files can neither forge records nor hide a deleted tail.
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
from pathlib import Path

from sqlalchemy.engine import make_url

from include.config import get_settings
from include.registry.errors import AuditError

log = logging.getLogger(__name__)

KEY_FILE = "audit-hmac.key"


def secrets_dir() -> Path:
    """Return the secrets folder (``MODELGATE_SECRETS_DIR`` or ``<home>/secrets``), created 0700."""
    s = get_settings()
    d = s.secrets_dir or s.home / "secrets"
    d.mkdir(mode=0o700, parents=True, exist_ok=True)
    return d


def write_secret_file(path: Path, data: bytes) -> bool:
    """Create ``path`` with ``data``, mode 0600 from its first byte; return False if it exists.

    Args:
        path: the file to create.
        data: its content.

    Returns:
        True when this call created the file, False when it already existed (left untouched).
    """
    # written complete under a private name, then linked in: readers never see it empty or partial
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


def load_key(create: bool) -> bytes:
    """Return the audit HMAC key, creating it when ``create`` and it does not exist yet.

    Raises:
        AuditError: the key is missing (and ``create`` is False), unreadable, or malformed.
    """
    path = secrets_dir() / KEY_FILE
    if create and write_secret_file(path, secrets.token_hex(32).encode()):
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


def mac(key: bytes, payload: str) -> str:
    """Return the hex HMAC-SHA256 of ``payload`` under ``key``."""
    return hmac.new(key, payload.encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Head:
    """The anchored head of the chain: how many records, and the MAC of the last one."""

    count: int
    mac: str


def anchor_path(url: str) -> Path:
    """Return the head-anchor file of the audit database at ``url`` (password left out of the name)."""
    safe = make_url(url).render_as_string(hide_password=True)
    fp = hashlib.sha256(safe.encode()).hexdigest()[:16]
    return secrets_dir() / f"audit-head-{fp}.json"


def _head_mac(key: bytes, url: str, head: Head) -> str:
    safe = make_url(url).render_as_string(hide_password=True)
    return mac(key, json.dumps(["head", safe, head.count, head.mac]))


def read_head(key: bytes, url: str) -> Head | None:
    """Return the anchored head of ``url``'s log, or None when no record was ever anchored.

    Raises:
        AuditError: the anchor file is unreadable, malformed, or its MAC does not verify.
    """
    path = anchor_path(url)
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


def advance_head(key: bytes, url: str, head: Head) -> None:
    """Move the anchor forward to ``head`` (never backwards), atomically under a file lock.

    Called after each committed append. A crash between the commit and this call leaves the anchor
    one record behind, which :func:`include.registry.audit.verify` accepts because the extra records
    carry valid MACs; deleting records can never move the anchor back.
    """
    path = anchor_path(url)
    with _locked(path):
        current = read_head(key, url)
        if current is not None and current.count >= head.count:
            return
        doc = {"count": head.count, "mac": head.mac, "sig": _head_mac(key, url, head)}
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.unlink(missing_ok=True)
        write_secret_file(tmp, json.dumps(doc).encode())
        os.replace(tmp, path)
