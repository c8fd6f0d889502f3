"""The steps of the ``erase_subject`` and ``retention`` DAGs, typed: each returns a frozen record.

erase → verify, and drop expired. The records (:mod:`include.xcom`) are what the tasks hand on
through XCom: the :class:`Erasure` report (counts, the keyed hash of the subject, never the unit id
itself, which stays in the run's conf) and the :class:`Retention` report. The files themselves are
rewritten in place under the events root and the derived tables; :mod:`include.compliance.erasure`
and :mod:`include.compliance.retention` do the work.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from include.compliance.errors import ComplianceError
from include.xcom import XcomRecord

__all__ = ["Erasure", "Retention", "drop_expired", "erase", "verify"]


@dataclass(frozen=True)
class Erasure(XcomRecord):
    """What an erasure removed, how long it took against its SLA, and (after verify) what is left.

    ``subject`` is the keyed hash of the unit id (``include.compliance.subject``); ``targets`` has one
    ``{"kind", "root", "column", "rows_removed", "files"}`` per target; ``partitions`` the folders that
    held the unit; ``remaining`` is None until :func:`verify` counted.
    """

    subject: str
    reason: str
    requested_by: str
    rows_removed: int
    files_scanned: int
    files_rewritten: int
    files_deleted: int
    stale_temps_removed: int
    targets: list[dict[str, Any]]
    partitions: list[str]
    seconds: float
    audit_id: int
    sla_seconds: float
    within_sla: bool
    remaining: int | None = None


@dataclass(frozen=True)
class Retention(XcomRecord):
    """What a retention run dropped (or, ``dry_run``, would drop) and its audit record (None: dry run)."""

    region: str
    retention_days: int
    cutoff: str
    root: str
    dropped: list[str]
    files: int
    interrupted_finished: int
    dry_run: bool
    audit_id: int | None


def erase(conf: dict[str, Any], actor: str, run_id: str, sla_seconds: float) -> Erasure:
    """Validate the conf (``unit_id``, ``reason``, ``requested_by``; optional ``events_root``) and erase.

    Raises:
        InvalidErasureRequest: a conf field is missing, not a string, empty or too long.
        ComplianceError: a file cannot be read or rewritten (files done so far stay done; re-run).
    """
    from include.compliance.erasure import ErasureRequest, erase_subject

    request = ErasureRequest.from_conf(conf)
    report = erase_subject(request, actor=actor, run_id=run_id, events_root=conf.get("events_root"))
    return Erasure.from_xcom(
        {**report, "sla_seconds": sla_seconds, "within_sla": report["seconds"] < sla_seconds}
    )


def verify(erasure: Erasure, conf: dict[str, Any]) -> Erasure:
    """Count the unit's records left in every target; return the report with ``remaining`` (0).

    Raises:
        ComplianceError: records of the subject remain.
    """
    from include.compliance.erasure import remaining

    left = remaining(str(conf["unit_id"]), conf.get("events_root"))
    if left:
        raise ComplianceError(f"{left} records of subject {erasure.subject} remain after erasure")
    return dataclasses.replace(erasure, remaining=left)


def drop_expired(conf: dict[str, Any], actor: str, run_id: str) -> Retention:
    """Drop the event partitions older than the region's retention (conf ``events_root``, ``now``, ``dry_run``).

    Raises:
        ComplianceError: ``now`` is not an aware ISO time, the root is not local, or a partition cannot
            be removed.
    """
    from include.compliance.retention import apply_retention

    raw = conf.get("now")
    try:
        now = datetime.fromisoformat(str(raw)) if raw else None
    except ValueError as e:
        raise ComplianceError(f"conf now {raw!r} is not an ISO time: {e}") from e
    report = apply_retention(actor=actor, run_id=run_id, events_root=conf.get("events_root"), now=now,
                             dry_run=bool(conf.get("dry_run")))  # fmt: skip
    return Retention.from_xcom(report)
