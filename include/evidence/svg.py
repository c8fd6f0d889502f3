"""Server-side SVG plots: effects with intervals per metric, and the stage timeline of each version.

Plain SVG text, no JavaScript and nothing fetched: the page works offline and in a locked-down browser.
"""

from __future__ import annotations

import math
from html import escape
from typing import Any

GOOD = {"pass", "passed", "registered", "promoted", "champion", "approved", "ship"}
BAD = {"fail", "failed", "rollback", "rolled_back", "rejected", "demoted", "stop_harm", "aborted"}
COLORS = {"good": "#2e7d32", "bad": "#c62828", "warn": "#ef6c00", "none": "#757575"}


def tone(verdict: str | None) -> str:
    """Return ``good``, ``bad``, ``warn`` or ``none`` for a verdict (colour and CSS class)."""
    v = (verdict or "").lower()
    if v in GOOD:
        return "good"
    if v in BAD:
        return "bad"
    if v in ("", "not run", "none", "unknown"):
        return "none"
    return "warn"


def _fmt(x: float) -> str:
    return f"{x:.4g}"


def interval_plot(rows: list[dict[str, Any]], title: str) -> str:
    """Return an SVG forest plot: one line per row with its effect (dot) and interval (bar), zero marked.

    Args:
        rows: ``{"label", "effect", "low", "high"}``; infinite bounds are drawn as arrows to the edge.
        title: the plot's title (also its accessible name).

    Returns:
        SVG markup ('' when no row has a finite effect).
    """
    rows = [r for r in rows if r.get("effect") is not None and math.isfinite(r["effect"])]
    if not rows:
        return ""
    finite = [v for r in rows for v in (r["effect"], r.get("low"), r.get("high")) if v is not None and math.isfinite(v)]
    lo, hi = min([*finite, 0.0]), max([*finite, 0.0])
    pad = (hi - lo) * 0.08 or 1.0
    lo, hi = lo - pad, hi + pad
    left, width, row_h, top = 230, 400, 26, 30
    height = top + row_h * len(rows) + 30

    def x(v: float | None) -> float:
        v = hi if v is None or v == math.inf else lo if v == -math.inf else v
        return left + (v - lo) / (hi - lo) * width

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="plot" role="img" width="{left + width + 20}" '
        f'height="{height}" aria-label="{escape(title)}"><title>{escape(title)}</title>',
        f'<text x="4" y="16" font-size="13" font-weight="bold">{escape(title)}</text>',
        f'<line x1="{x(0.0):.1f}" y1="{top - 6}" x2="{x(0.0):.1f}" y2="{height - 24}" stroke="#999" stroke-dasharray="4 3"/>',
    ]
    for i, r in enumerate(rows):
        y = top + row_h * i + row_h / 2
        low, high = r.get("low"), r.get("high")
        crosses = low is not None and high is not None and low <= 0 <= high
        color = COLORS["none"] if crosses else COLORS["warn"]
        parts.append(f'<text x="4" y="{y + 4:.1f}" font-size="12">{escape(str(r["label"]))[:60]}</text>')
        if low is not None and high is not None:
            parts.append(f'<line x1="{x(low):.1f}" y1="{y:.1f}" x2="{x(high):.1f}" y2="{y:.1f}" stroke="{color}" stroke-width="3"/>')
        parts.append(
            f'<circle cx="{x(r["effect"]):.1f}" cy="{y:.1f}" r="5" fill="{color}"><title>{escape(str(r["label"]))}: '
            f"{_fmt(r['effect'])} [{'' if low is None else _fmt(low)}, {'' if high is None else _fmt(high)}]</title></circle>"
        )
    parts.append(f'<text x="{left}" y="{height - 8}" font-size="11">{_fmt(lo)}</text>')
    parts.append(f'<text x="{left + width}" y="{height - 8}" font-size="11" text-anchor="end">{_fmt(hi)}</text>')
    parts.append(f'<text x="{x(0.0):.1f}" y="{height - 8}" font-size="11" text-anchor="middle">0</text>')
    parts.append("</svg>")
    return "".join(parts)


def stage_timeline(versions: list[dict[str, Any]]) -> str:
    """Return an SVG of each version's gates in order, coloured by verdict (the lifecycle at a glance).

    Args:
        versions: the timeline from :func:`include.evidence.timeline.version_timeline`.

    Returns:
        SVG markup ('' when there are no versions).
    """
    if not versions:
        return ""
    box_w, box_h, gap, left, row_h = 128, 34, 6, 70, 48
    cols = max(len(v["gates"]) for v in versions)
    width = left + cols * (box_w + gap) + 10
    height = 24 + row_h * len(versions)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="plot" role="img" width="{width}" height="{height}" '
        'aria-label="stage timeline"><title>stage timeline</title>'
    ]
    for i, v in enumerate(versions):
        y = 16 + row_h * i
        parts.append(f'<text x="4" y="{y + box_h / 2 + 4:.0f}" font-size="13" font-weight="bold">v{escape(v["version"])}</text>')
        for j, g in enumerate(v["gates"]):
            bx = left + j * (box_w + gap)
            color = COLORS[tone(g["verdict"])]
            parts.append(
                f'<g><title>{escape(g["gate"])}: {escape(str(g["verdict"]))}</title>'
                f'<rect x="{bx}" y="{y}" width="{box_w}" height="{box_h}" rx="4" fill="{color}" fill-opacity="0.15" stroke="{color}"/>'
                f'<text x="{bx + 6}" y="{y + 14}" font-size="10">{escape(g["gate"])[:24]}</text>'
                f'<text x="{bx + 6}" y="{y + 28}" font-size="11" font-weight="bold" fill="{color}">{escape(str(g["verdict"]))[:20]}</text></g>'
            )
    parts.append("</svg>")
    return "".join(parts)
