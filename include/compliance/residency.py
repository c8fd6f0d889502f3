"""Residency on the Airflow and batch side: events are read only in their own region.

The region is ``MODELGATE_REGION`` (:class:`include.config.Settings`). :func:`check_events_region`
refuses an events root whose region marker (written by the router of that region,
:mod:`modelgate_contracts.residency`) names another region. Model versions are checked where they are
resolved (:func:`include.registry.resolve.check_residency`).
"""

from __future__ import annotations

import logging
from pathlib import Path

from include.compliance.errors import ResidencyViolation
from modelgate_contracts.residency import REGION_MARKER

log = logging.getLogger(__name__)


def current_region() -> str | None:
    """Return ``MODELGATE_REGION`` (None: residency not enforced)."""
    from include.config import get_settings

    return get_settings().region


def check_events_region(root: str, region: str | None = None) -> None:
    """Refuse to read an events root that belongs to another region.

    Args:
        root: the events root (local folder; URLs are configured per region and not checked here).
        region: the reader's region (default ``MODELGATE_REGION``; None: not enforced).

    Raises:
        ResidencyViolation: the root's region marker names another region.
    """
    region = region if region is not None else current_region()
    if region is None or ("://" in root and not root.startswith("file://")):
        return
    marker = Path(root.removeprefix("file://")) / REGION_MARKER
    if not marker.is_file():
        return
    found = marker.read_text(encoding="utf-8").strip()
    if found != region:
        raise ResidencyViolation(
            f"events under {root} belong to region {found!r}; this worker runs in {region!r} (MODELGATE_REGION) "
            "and does not read another region's events"
        )
