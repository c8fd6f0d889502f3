"""The router's own records on disk: accepted changes and guard cuts (JSONL), and refusals in memory.

The routes themselves live in the control-plane store (``router.control``), never here."""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

from router.errors import RouterError

log = logging.getLogger(__name__)


class ChangeLog:
    """Appends accepted changes to ``changes.jsonl`` and guard cuts to ``guard-events.jsonl``, remembers refusals.

    Args:
        state_dir: the router's state directory (created if missing).
    """

    def __init__(self, state_dir: Path) -> None:
        state_dir.mkdir(parents=True, exist_ok=True)
        self.changes_path = state_dir / "changes.jsonl"
        self.guard_path = state_dir / "guard-events.jsonl"
        self.refusals_path = state_dir / "refusals.jsonl"
        """Refusals that are compliance decisions (residency), one JSON object per line."""
        self.load_errors: list[dict[str, Any]] = []
        self.guard_events: list[dict[str, Any]] = []

    def record(
        self, actor: str, action: str, subject: str, before: Any, after: Any, revision: int
    ) -> dict[str, Any]:
        """Append one accepted change.

        Args:
            actor: who made it (key name, ``guard``, ``startup``).
            action: ``routes.put``, ``routes.delete``, ``routes.reload``, ``guard.cut``.
            subject: ``routes:<model>`` or ``routes:*``.
            before: state before.
            after: state after.
            revision: the route table revision after the change.

        Returns:
            The record written.
        """
        rec = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
            + f".{int(time.time() * 1e6) % 1_000_000:06d}Z",
            "actor": actor,
            "action": action,
            "subject": subject,
            "before": before,
            "after": after,
            "revision": revision,
            "pid": os.getpid(),
        }
        append_jsonl(self.changes_path, rec)
        log.info("routes change %s %s by %s (revision %d)", action, subject, actor, revision)
        return rec

    def changes(self, limit: int = 1000) -> list[dict[str, Any]]:
        """Return the last ``limit`` accepted changes, oldest first.

        Args:
            limit: how many.

        Returns:
            The records.
        """
        return read_jsonl(self.changes_path)[-limit:]

    def report_error(self, action: str, subject: str, err: RouterError) -> None:
        """Remember a refused change for the admin API (the last 100).

        Args:
            action: what was attempted.
            subject: what it concerned.
            err: why it was refused.
        """
        rec = {
            "ts": time.time(),
            "action": action,
            "subject": subject,
            "code": err.code,
            "error": err.message,
        }
        self.load_errors.append(rec)
        del self.load_errors[:-100]
        log.error("refused %s %s: %s", action, subject, err.message)
        if err.code == "residency_refused":  # a compliance decision: kept on disk with the changes
            append_jsonl(self.refusals_path, rec)

    def guard_event(self, event: dict[str, Any]) -> None:
        """Remember and append a guard cut.

        Args:
            event: what was cut, why, and the window counts.
        """
        self.guard_events.append(event)
        append_jsonl(self.guard_path, event)


def append_jsonl(path: Path, rec: dict[str, Any]) -> None:
    """Append one JSON line with a single ``write`` on an ``O_APPEND`` descriptor (whole lines only).

    Args:
        path: the file.
        rec: the record.
    """
    line = (json.dumps(rec, sort_keys=True, default=str) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Read a JSONL file, skipping damaged lines.

    Args:
        path: the file.

    Returns:
        The records (empty when the file is missing).
    """
    if not path.exists():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                log.warning("skipping a damaged line in %s", path)
    return out
