"""The keyed hash that names a data subject in audit records instead of their id.

``HMAC-SHA256(key, unit_id)`` with a 32-byte key kept in the secrets folder
(``<secrets>/subject-hmac.key``, 0600, created on first use). The same id always gives the same
hash, so two erasures of one person can be matched in the audit log, but the id cannot be recovered
from it, nor guessed by hashing candidate ids without the key.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from include.compliance.errors import ComplianceError

KEY_FILE = "subject-hmac.key"
"""File name of the key in the secrets folder."""


def _key() -> bytes:
    from include.registry.audit_anchor import secrets_dir, write_secret_file

    path = secrets_dir() / KEY_FILE
    if not path.exists():
        write_secret_file(path, secrets.token_hex(32).encode())
    try:
        return bytes.fromhex(path.read_text().strip())
    except (OSError, ValueError) as e:
        raise ComplianceError(f"cannot read the subject hash key {path}: {e}") from e


def subject_hash(unit_id: str) -> str:
    """Return the keyed hash of a unit id (64 hex digits).

    Args:
        unit_id: the data subject's unit id.

    Returns:
        ``hmac-sha256:<hex>``.

    Raises:
        ComplianceError: the key cannot be read.
    """
    digest = hmac.new(_key(), unit_id.encode("utf-8"), hashlib.sha256).hexdigest()
    return f"hmac-sha256:{digest}"
