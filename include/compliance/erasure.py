"""Erasure of one data subject: their records leave every event partition and every derived table.

The router's event files (``<events root>/date=.../hour=.../*.parquet``; the sampled ``inputs`` are a
column of the same records) and the configured derived tables (``MODELGATE_ERASURE_ROOTS``: batch
outputs, outcome tables, any folder of Parquet files keyed by unit) are scanned; each file that holds
the unit is rewritten without its rows, atomically (:mod:`include.compliance.rewrite`). A second run
finds nothing and changes nothing; a run killed mid-rewrite leaves every file old or new, and the next
run finishes the job.

The audit record (``erase_subject``) names the subject by a keyed hash
(:mod:`include.compliance.subject`), never by the id, and carries the counts. Nothing here logs the id.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from include.compliance import rewrite
from include.compliance.errors import ComplianceError, InvalidErasureRequest
from include.compliance.subject import subject_hash

log = logging.getLogger(__name__)

MAX_FIELD = 512
"""Longest unit id, reason or requester accepted."""

UNIT_COLUMN = "unit_id"
"""Column that holds the unit id in event files and, by default, in derived tables."""


@dataclass(frozen=True)
class ErasureRequest:
    """A validated erasure request.

    Attributes:
        unit_id: the data subject's unit id (as the router recorded ``X-Unit-Id``).
        reason: why (e.g. ``PDPL art. 15 request #123``).
        requested_by: who asked (the subject, a DPO, a ticket).
    """

    unit_id: str
    reason: str
    requested_by: str

    @classmethod
    def from_conf(cls, conf: dict[str, Any]) -> ErasureRequest:
        """Validate a DAG run's conf.

        Args:
            conf: ``{"unit_id", "reason", "requested_by"}``.

        Returns:
            The request.

        Raises:
            InvalidErasureRequest: a field is missing, not a string, empty or too long.
        """
        values = {}
        for name in ("unit_id", "reason", "requested_by"):
            v = conf.get(name)
            if not isinstance(v, str) or not v.strip():
                raise InvalidErasureRequest(f"conf.{name} is required: a non-empty string")
            if len(v) > MAX_FIELD:
                raise InvalidErasureRequest(f"conf.{name} is longer than {MAX_FIELD} characters")
            values[name] = v if name == "unit_id" else v.strip()
        return cls(**values)


@dataclass(frozen=True)
class Target:
    """A folder of Parquet files to clean and the column that holds the unit id."""

    root: Path
    column: str
    kind: str


def parse_roots(spec: str) -> list[tuple[Path, str]]:
    """Parse ``MODELGATE_ERASURE_ROOTS``: comma-separated ``folder`` or ``folder#column``.

    Args:
        spec: the setting.

    Returns:
        ``(folder, column)`` pairs.

    Raises:
        ComplianceError: an entry is a URL (only local folders are supported) or empty.
    """
    out = []
    for raw in spec.split(","):
        item = raw.strip()
        if not item:
            continue
        folder, _, column = item.partition("#")
        if "://" in folder:
            raise ComplianceError(f"erasure root {folder!r}: only local folders are supported")
        out.append((Path(folder), column.strip() or UNIT_COLUMN))
    return out


def targets(events_root: str | None = None, extra_roots: str | None = None) -> list[Target]:
    """Return what an erasure cleans: the events root, then the derived tables.

    Args:
        events_root: the router's events root (default: the settings').
        extra_roots: derived tables (default: ``MODELGATE_ERASURE_ROOTS``).

    Returns:
        The targets.

    Raises:
        ComplianceError: the events root is a URL (object storage is not supported yet).
    """
    from include.config import get_settings

    s = get_settings()
    root = events_root or s.resolved_events_root()
    if "://" in root and not root.startswith("file://"):
        raise ComplianceError(f"events root {root!r}: erasure supports local folders only")
    out = [Target(Path(root.removeprefix("file://")), UNIT_COLUMN, "events")]
    spec = s.erasure_roots if extra_roots is None else extra_roots
    out += [Target(folder, column, "derived") for folder, column in parse_roots(spec)]
    return out


def erase_subject(
    request: ErasureRequest,
    *,
    actor: str,
    run_id: str | None = None,
    events_root: str | None = None,
    extra_roots: str | None = None,
    progress: rewrite.Progress | None = None,
) -> dict[str, Any]:
    """Remove one unit's records from every target, then write the audit record.

    Args:
        request: the validated request.
        actor: who runs it (the triggering user, or ``airflow:erase_subject``).
        run_id: the Airflow run id.
        events_root: the router's events root (default: the settings').
        extra_roots: derived tables (default: ``MODELGATE_ERASURE_ROOTS``).
        progress: observer of each file's rewrite stages (logging, tests).

    Returns:
        The report (also the audit record's ``after``): ``subject`` (keyed hash), ``rows_removed``,
        ``files_scanned``, ``files_rewritten``, ``files_deleted``, ``stale_temps_removed``, per target
        ``targets``, ``partitions`` (folders that held the unit), ``seconds``, ``audit_id``.

    Raises:
        ComplianceError: a file cannot be read or rewritten (files done so far stay done; re-run).
    """
    from include.registry.audit import append_audit

    t0 = time.monotonic()
    subject = subject_hash(request.unit_id)
    report: dict[str, Any] = {
        "subject": subject,
        "reason": request.reason,
        "requested_by": request.requested_by,
        "rows_removed": 0,
        "files_scanned": 0,
        "files_rewritten": 0,
        "files_deleted": 0,
        "stale_temps_removed": 0,
        "targets": [],
        "partitions": [],
    }
    partitions: set[str] = set()
    for t in targets(events_root, extra_roots):
        per: dict[str, Any] = {
            "kind": t.kind,
            "root": str(t.root),
            "column": t.column,
            "rows_removed": 0,
            "files": 0,
        }
        report["stale_temps_removed"] += rewrite.remove_stale_temps(t.root)
        for path in rewrite.parquet_files(t.root):
            res = rewrite.drop_rows(path, t.column, request.unit_id, progress)
            report["files_scanned"] += 1
            if res.rows_removed:
                per["rows_removed"] += res.rows_removed
                per["files"] += 1
                report["rows_removed"] += res.rows_removed
                report["files_deleted" if res.deleted else "files_rewritten"] += 1
                partitions.add(f"{t.kind}:{path.parent.relative_to(t.root).as_posix()}")
        report["targets"].append(per)
    report["partitions"] = sorted(partitions)
    report["seconds"] = round(time.monotonic() - t0, 3)
    rec = append_audit(actor, "erase_subject", f"subject:{subject}", None, dict(report), run_id=run_id)
    report["audit_id"] = rec.id
    log.info(
        "erased %s: %d rows from %d files (%d deleted) in %.1f s",
        subject,
        report["rows_removed"],
        report["files_rewritten"] + report["files_deleted"],
        report["files_deleted"],
        report["seconds"],
    )
    return report


def remaining(unit_id: str, events_root: str | None = None, extra_roots: str | None = None) -> int:
    """Count the records of ``unit_id`` still in the targets (read-only; the check after an erasure).

    Args:
        unit_id: the unit id.
        events_root: the router's events root (default: the settings').
        extra_roots: derived tables (default: ``MODELGATE_ERASURE_ROOTS``).

    Returns:
        Matching rows across every target.
    """
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    n = 0
    for t in targets(events_root, extra_roots):
        for path in rewrite.parquet_files(t.root):
            pf = pq.ParquetFile(path)
            if t.column in pf.schema_arrow.names:
                n += int(pc.sum(pc.equal(pf.read(columns=[t.column]).column(t.column), unit_id)).as_py() or 0)
    return n
