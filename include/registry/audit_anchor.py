"""The audit log's secrets: its HMAC key and its head anchor, both kept outside the database.

The file handling itself is :mod:`modelgate_control.audit` (the router writes audit records too);
this module places the files in the secrets folder of the settings.

The key (32 random bytes, hex) lives in ``<secrets>/audit-hmac.key``; the head anchor (number of
records and MAC of the last one, itself MAC'd with the key) lives in
``<secrets>/audit-head-<fingerprint of the database URL>.json``. Both are created 0600 with no
window (``O_CREAT | O_EXCL`` with the mode), in a 0700 folder. Someone who can rewrite the database
but cannot read these files can neither forge records nor hide a deleted tail.
"""

from __future__ import annotations

import logging
from pathlib import Path

from include.config import get_settings
from include.registry.errors import AuditError
from modelgate_control import ControlError
from modelgate_control import audit as core
from modelgate_control.audit import KEY_FILE, Head, mac

log = logging.getLogger(__name__)

__all__ = [
    "KEY_FILE", "Head", "advance_head", "anchor_path", "load_key", "mac", "read_head", "secrets_dir",
    "write_secret_file",
]


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
    return core.write_secret_file(path, data)


def load_key(create: bool) -> bytes:
    """Return the audit HMAC key, creating it when ``create`` and it does not exist yet.

    Raises:
        AuditError: the key is missing (and ``create`` is False), unreadable, or malformed.
    """
    try:
        return core.load_key(secrets_dir() / KEY_FILE, create)
    except ControlError as e:
        raise AuditError(str(e)) from e


def anchor_path(url: str) -> Path:
    """Return the head-anchor file of the audit database at ``url`` (password left out of the name)."""
    return core.anchor_path(secrets_dir(), url)


def read_head(key: bytes, url: str) -> Head | None:
    """Return the anchored head of ``url``'s log, or None when no record was ever anchored.

    Raises:
        AuditError: the anchor file is unreadable, malformed, or its MAC does not verify.
    """
    try:
        return core.read_head(key, secrets_dir(), url)
    except ControlError as e:
        raise AuditError(str(e)) from e


def advance_head(key: bytes, url: str, head: Head) -> None:
    """Move the anchor forward to ``head`` (never backwards), atomically under a file lock.

    Called after each committed append. A crash between the commit and this call leaves the anchor
    one record behind, which :func:`include.registry.audit.verify` accepts because the extra records
    carry valid MACs; deleting records can never move the anchor back.
    """
    try:
        core.advance_head(key, secrets_dir(), url, head)
    except ControlError as e:
        raise AuditError(str(e)) from e
