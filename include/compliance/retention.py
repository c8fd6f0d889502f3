"""Retention of prediction events: hour partitions older than the region's retention are dropped.

The retention comes from the settings per region (``MODELGATE_RETENTION_DAYS`` JSON, else
``MODELGATE_RETENTION_DEFAULT_DAYS``; the region is ``MODELGATE_REGION``). A partition
``date=D/hour=H`` holds records of ``[D H:00, D H:00 + 1 h)``; it expires once its end is older than
``now - retention``. Dropping renames the folder to a hidden name first (atomic: readers skip names
starting with a dot) and then deletes it, so a reader never sees half a partition and a killed run
is finished by the next one. Every run appends one ``retention.drop`` audit record.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from include.compliance.errors import ComplianceError

log = logging.getLogger(__name__)

DROPPING = ".dropping"
"""Suffix of a partition folder being deleted (its name also starts with a dot)."""

_DATE = re.compile(r"^date=(\d{4}-\d{2}-\d{2})$")
_HOUR = re.compile(r"^hour=(\d{2})$")


def retention_for(region: str | None = None) -> tuple[str, int]:
    """Return ``(region, days)`` from the settings.

    Args:
        region: the region (default ``MODELGATE_REGION``, else ``default``).

    Returns:
        The region's name and its retention in days.
    """
    from include.config import get_settings

    s = get_settings()
    name = region or s.region or "default"
    return name, int(s.retention_days.get(name, s.retention_default_days))


def expired(root: Path, cutoff: datetime) -> list[Path]:
    """List the partition folders under ``root`` whose records are all older than ``cutoff``.

    A date folder whose hours have all expired is listed whole (instead of its hours).

    Args:
        root: the events root (local folder).
        cutoff: records before this instant are expired.

    Returns:
        Folders to drop, oldest first.
    """
    out: list[Path] = []
    if not root.exists():
        return out
    for day_dir in sorted(p for p in root.iterdir() if p.is_dir() and _DATE.match(p.name)):
        m = _DATE.match(day_dir.name)
        assert m is not None
        day = datetime.fromisoformat(m.group(1)).replace(tzinfo=UTC)
        if day + timedelta(days=1) <= cutoff:
            out.append(day_dir)
            continue
        for hour_dir in sorted(p for p in day_dir.iterdir() if p.is_dir() and _HOUR.match(p.name)):
            h = _HOUR.match(hour_dir.name)
            assert h is not None
            if day + timedelta(hours=int(h.group(1)) + 1) <= cutoff:
                out.append(hour_dir)
    return out


def _drop(folder: Path) -> int:
    """Rename ``folder`` to a hidden name, then delete it; return the Parquet files it held."""
    hidden = folder.with_name(f".{folder.name}{DROPPING}")
    files = sum(1 for _ in folder.rglob("*.parquet"))
    os.replace(folder, hidden)
    shutil.rmtree(hidden)
    return files


def _finish_interrupted(root: Path) -> int:
    n = 0
    for p in list(root.rglob(f".*{DROPPING}")):
        if p.is_dir():
            shutil.rmtree(p)
            n += 1
    return n


def apply_retention(
    *,
    actor: str,
    run_id: str | None = None,
    events_root: str | None = None,
    region: str | None = None,
    now: datetime | None = None,
    dry_run: bool = False,
) -> dict[str, Any]:
    """Drop the event partitions older than the region's retention and audit what was dropped.

    Args:
        actor: who runs it (``airflow:retention`` for scheduled runs).
        run_id: the Airflow run id.
        events_root: the events root (default: the settings'); local folders only.
        region: the region (default: ``MODELGATE_REGION``).
        now: the reference time (default: now, UTC).
        dry_run: list what would be dropped, drop nothing, write no audit record.

    Returns:
        ``region``, ``retention_days``, ``cutoff``, ``dropped`` (partition paths relative to the root),
        ``files``, ``interrupted_finished``, ``dry_run``, ``audit_id``.

    Raises:
        ComplianceError: the root is not a local folder, or a partition cannot be removed.
    """
    from include.config import get_settings
    from include.registry.audit import append_audit

    root_s = events_root or get_settings().resolved_events_root()
    if "://" in root_s and not root_s.startswith("file://"):
        raise ComplianceError(f"events root {root_s!r}: retention supports local folders only")
    root = Path(root_s.removeprefix("file://"))
    name, days = retention_for(region)
    now = now or datetime.now(UTC)
    if now.tzinfo is None:
        raise ComplianceError(f"now must be timezone-aware, got {now.isoformat()}")
    cutoff = now - timedelta(days=days)
    todo = expired(root, cutoff)
    report: dict[str, Any] = {
        "region": name,
        "retention_days": days,
        "cutoff": cutoff.isoformat(),
        "root": str(root),
        "dropped": [p.relative_to(root).as_posix() for p in todo],
        "files": 0,
        "interrupted_finished": 0,
        "dry_run": dry_run,
        "audit_id": None,
    }
    if dry_run:
        return report
    try:
        if root.exists():
            report["interrupted_finished"] = _finish_interrupted(root)
        for p in todo:
            report["files"] += _drop(p)
    except OSError as e:
        raise ComplianceError(f"cannot drop expired partitions under {root}: {e}") from e
    rec = append_audit(actor, "retention.drop", f"events:{name}", None, dict(report), run_id=run_id)
    report["audit_id"] = rec.id
    log.info(
        "retention %s (%d days): dropped %d partitions (%d files) older than %s",
        name,
        days,
        len(todo),
        report["files"],
        cutoff.isoformat(),
    )
    return report
