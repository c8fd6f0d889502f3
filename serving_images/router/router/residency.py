"""The region marker of the router's events root (``modelgate_contracts.residency.REGION_MARKER``).

A router with a region (``ROUTER_REGION``) writes its region into the marker of a local events root,
or checks the marker that is there: a root that belongs to another region is refused at start, and
the DAGs refuse to read a root whose marker names another region than theirs.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from modelgate_contracts.residency import REGION_MARKER

log = logging.getLogger(__name__)


def claim_events_root(root: str, region: str | None) -> None:
    """Mark a local events root as ``region``'s, or check that it already is.

    Args:
        root: the events root (URLs are left alone: object stores are configured per region).
        region: the router's region; None does nothing.

    Raises:
        ValueError: the root's marker names another region.
    """
    if region is None or ("://" in root and not root.startswith("file://")):
        return
    folder = Path(root.removeprefix("file://"))
    marker = folder / REGION_MARKER
    if marker.is_file():
        found = marker.read_text(encoding="utf-8").strip()
        if found != region:
            raise ValueError(
                f"events root {folder} belongs to region {found!r} (its {REGION_MARKER} file); this router "
                f"runs in {region!r}: configure ROUTER_EVENTS_ROOT for its own region"
            )
        return
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{REGION_MARKER}.{os.getpid()}"
    tmp.write_text(region + "\n", encoding="utf-8")
    os.replace(tmp, marker)
    log.info("events root %s marked as region %s", folder, region)
