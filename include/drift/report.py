"""Self-contained HTML drift report: a table of every feature's statistics and one histogram per feature."""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Mapping
from typing import Any

import numpy as np


def _plot(name: str, ref: np.ndarray, cur: np.ndarray, categorical: bool) -> str:
    """Return a base64 PNG overlaying the reference and current distributions of one feature."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.8, 2.8), dpi=90)
    try:
        if categorical:
            levels = sorted(set(ref.tolist()) | set(cur.tolist()), key=str)
            x = np.arange(len(levels))
            for shift, data, label in ((-0.2, ref, "reference"), (0.2, cur, "current")):
                shares = [float(np.mean(data == lv)) for lv in levels]
                ax.bar(x + shift, shares, width=0.4, label=label)
            ax.set_xticks(x, [str(lv) for lv in levels], rotation=45, fontsize=7)
        else:
            edges = np.unique(np.quantile(np.concatenate([ref, cur]), np.linspace(0, 1, 31)))
            if edges.size < 2:
                edges = np.array([edges[0] - 0.5, edges[0] + 0.5])
            ax.hist(ref, bins=edges.tolist(), density=True, alpha=0.5, label="reference")
            ax.hist(cur, bins=edges.tolist(), density=True, alpha=0.5, label="current")
        ax.set_title(name, fontsize=9)
        ax.legend(fontsize=7)
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
    finally:
        plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    return html.escape(str(value))


def render(
    title: str, result: Mapping[str, Any], pairs: Mapping[str, tuple[np.ndarray, np.ndarray, bool]]
) -> str:
    """Render the report.

    Args:
        title: heading (model and version).
        result: :func:`include.drift.detect.compare`'s result, plus optional ``window`` and ``notes``.
        pairs: the compared values per feature (for the plots).

    Returns:
        One HTML page with the plots embedded.
    """
    cols = ("drift", "p_value", "psi", "psi_p", "js", "js_p", "ks", "ks_p", "n_reference", "n_current")
    rows = []
    for name, f in result.get("features", {}).items():
        style = ' style="background:#fdd"' if f.get("drift") else ""
        cells = "".join(f"<td>{_fmt(f.get(c))}</td>" for c in cols)
        rows.append(f"<tr{style}><th>{html.escape(name)}</th>{cells}</tr>")
    plots = "".join(
        f'<figure><img alt="{html.escape(name)}" src="data:image/png;base64,{_plot(name, ref, cur, cat)}">'
        "</figure>"
        for name, (ref, cur, cat) in pairs.items()
    )
    verdict = result.get("verdict", "drift" if result.get("drift") else "no_drift")
    notes = "".join(f"<li>{html.escape(str(n))}</li>" for n in result.get("notes", []))
    window = " .. ".join(result.get("window", [])) or "-"
    header = "".join(f"<th>{c}</th>" for c in cols)
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;margin:1.5em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:2px 6px;font-size:13px}}figure{{display:inline-block;margin:4px}}</style>
</head><body>
<h1>Drift: {html.escape(title)}</h1>
<p>Verdict: <b>{html.escape(str(verdict))}</b> (alpha {_fmt(result.get("alpha"))}, Benjamini-Hochberg
across features; p-values of PSI and JS from their null at these sample sizes). Window: {html.escape(window)}.</p>
<ul>{notes}</ul>
<table><tr><th>feature</th>{header}</tr>{"".join(rows)}</table>
{plots}
</body></html>
"""
