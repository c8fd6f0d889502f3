"""The regression report: a JSON document and a self-contained HTML page with embedded PNG plots."""

from __future__ import annotations

import base64
import html
import io
import json
import logging
from typing import Any

import numpy as np

from include.regression import stats

log = logging.getLogger(__name__)

_STATUS_COLOURS = {
    "pass": "#1a7f37",
    "fail": "#cf222e",
    "error": "#cf222e",
    "warn": "#9a6700",
    "skipped": "#6e7781",
}


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def plots(
    champion_scores: np.ndarray | None,
    challenger_scores: np.ndarray | None,
    bins: int,
    latency: dict[str, Any] | None,
) -> dict[str, str]:
    """Draw the report's plots as base64 PNGs.

    Args:
        champion_scores: champion positive-class scores on the synthetic inputs (or None).
        challenger_scores: challenger scores on the same rows (or None).
        bins: PSI bins.
        latency: latency figures (or None).

    Returns:
        Title → base64 PNG; only the plots whose data exist.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out: dict[str, str] = {}
    a = None if champion_scores is None else champion_scores[np.isfinite(champion_scores)]
    b = None if challenger_scores is None else challenger_scores[np.isfinite(challenger_scores)]
    if a is not None and b is not None and a.size and b.size:
        fig, ax = plt.subplots(figsize=(6, 3.2))
        edges = [i / 40 for i in range(41)]
        ax.hist(a, bins=edges, alpha=0.55, label="champion", density=True)
        ax.hist(b, bins=edges, alpha=0.55, label="challenger", density=True)
        ax.set_xlabel("positive-class score")
        ax.set_ylabel("density")
        ax.legend()
        out["Score distribution"] = _png(fig)

        ks = stats.ks_two_sample(a, b)
        fig, ax = plt.subplots(figsize=(6, 3.2))
        for s, name in ((a, "champion"), (b, "challenger")):
            xs = np.sort(s)
            ax.step(xs, np.arange(1, xs.size + 1) / xs.size, where="post", label=name)
        ax.axvline(ks.location, color="grey", linestyle="--", label=f"KS {ks.statistic:.3f}")
        ax.set_xlabel("positive-class score")
        ax.set_ylabel("ECDF")
        ax.legend()
        out["Empirical CDFs (two-sample KS)"] = _png(fig)

        p = stats.psi(a, b, bins=bins)
        fig, ax = plt.subplots(figsize=(6, 3.2))
        idx = np.arange(len(p.expected))
        ax.bar(idx - 0.2, p.expected, width=0.4, label="champion")
        ax.bar(idx + 0.2, p.actual, width=0.4, label="challenger")
        ax.set_xlabel("champion score quantile bin")
        ax.set_ylabel("share of rows")
        ax.set_title(f"PSI {p.psi:.4f}")
        ax.legend()
        out["PSI bins"] = _png(fig)
    if latency and "champion_p99_ms" in latency:
        fig, ax = plt.subplots(figsize=(6, 3.0))
        labels = ["champion p50", "challenger p50", "champion p99", "challenger p99"]
        values = [
            latency["champion_p50_ms"],
            latency["challenger_p50_ms"],
            latency["champion_p99_ms"],
            latency["challenger_p99_ms"],
        ]
        ax.bar(labels, values, color=["#4c72b0", "#dd8452", "#4c72b0", "#dd8452"])
        if latency.get("budget_ms") is not None:
            ax.axhline(float(latency["budget_ms"]), color="#cf222e", linestyle="--", label="p99 budget")
            ax.legend()
        ax.set_ylabel("ms per single-row run")
        out["Single-row latency"] = _png(fig)
    return out


def render_html(report: dict[str, Any], images: dict[str, str]) -> str:
    """Render the report as one self-contained HTML page (no external resources).

    Args:
        report: the JSON report from :func:`include.regression.pipeline` (``checks``, ``verdict``...).
        images: title → base64 PNG from :func:`plots`.

    Returns:
        The HTML text.
    """
    esc = html.escape
    verdict = report["verdict"]
    rows = []
    for c in report["checks"]:
        figures = ", ".join(f"{esc(k)}={esc(_fmt(v))}" for k, v in c["figures"].items())
        colour = _STATUS_COLOURS.get(c["status"], "#000")
        rows.append(
            f"<tr><td>{esc(c['name'])}</td><td style='color:{colour};font-weight:bold'>{esc(c['status'])}</td>"
            f"<td>{esc(c['reason'])}</td><td class='fig'>{figures}</td></tr>"
        )
    figs = "".join(
        f"<figure><img alt='{esc(t)}' src='data:image/png;base64,{img}'><figcaption>{esc(t)}</figcaption></figure>"
        for t, img in images.items()
    )
    reasons = "".join(f"<li>{esc(r)}</li>" for r in report.get("reasons", []))
    policy = esc(json.dumps(report.get("policy", {}), indent=1, sort_keys=True))
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Regression report {esc(report["model_name"])} v{esc(report["version"])}</title>
<style>
body{{font-family:system-ui,sans-serif;margin:2em;max-width:1100px}}
table{{border-collapse:collapse;width:100%}}td,th{{border:1px solid #d0d7de;padding:4px 6px;vertical-align:top}}
td.fig{{font-family:monospace;font-size:12px}}figure{{display:inline-block;margin:8px}}
.verdict{{font-size:1.4em;font-weight:bold;color:{_STATUS_COLOURS.get(verdict, "#000")}}}
</style></head><body>
<h1>Regression report: {esc(report["model_name"])} version {esc(report["version"])}</h1>
<p class="verdict">Verdict: {esc(verdict)}</p>
<p>Challenger <code>models:/{esc(report["model_name"])}/{esc(report["version"])}</code> against champion
version {esc(str(report.get("champion_version")))}; {esc(str(report.get("rows", "")))} synthetic rows;
checked at {esc(report.get("checked_at", ""))}; Airflow run {esc(str(report.get("airflow_run_id")))}.</p>
<ul>{reasons}</ul>
<h2>Checks</h2>
<table><tr><th>check</th><th>status</th><th>reason</th><th>figures</th></tr>{"".join(rows)}</table>
<h2>Plots</h2>{figs or "<p>No comparable scores (see the checks).</p>"}
<h2>Policy</h2><pre>{policy}</pre>
</body></html>
"""


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)
