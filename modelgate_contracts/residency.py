"""Data residency: which regions a model version's ``modelgate.residency`` tag allows, and the marker
file that names the region of an events root. The router, the batch job and the DAGs read both.
"""

from __future__ import annotations

REGION_MARKER = "_region"
"""File in an events root holding the region whose router writes there (readers skip ``_`` names)."""


def allowed_regions(tag: str | None) -> frozenset[str] | None:
    """Parse a ``modelgate.residency`` value: one region or a comma-separated list.

    Args:
        tag: the tag value (``eu-west-1`` or ``eu-west-1,eu-central-1``), or None.

    Returns:
        The regions, or None when the version carries no residency (no constraint).
    """
    if tag is None or not tag.strip():
        return None
    return frozenset(r.strip() for r in tag.split(",") if r.strip())


def residency_allows(tag: str | None, region: str | None) -> bool:
    """Whether a version with residency ``tag`` may be loaded in ``region``.

    Args:
        tag: the version's ``modelgate.residency`` (None: no constraint).
        region: where the component runs (None: residency not enforced).

    Returns:
        True when either is unset or ``region`` is one of the tag's regions.
    """
    regions = allowed_regions(tag)
    return region is None or regions is None or region in regions
