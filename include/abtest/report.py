"""The analysis report: a self-contained HTML page with plots, and its logging to MLflow.

:func:`render_html` draws four plots with matplotlib (Agg, embedded as base64 PNG, so the
page has no external resources): effects with confidence intervals per metric and variant,
the cumulative effect of the primary metric over time, the traffic split against the
expected weights, and the SRM status; then tables of every comparison and of the exclusion
counts. :func:`log_to_mlflow` logs results JSON and report as artifacts of one run in the
MLflow experiment ``abtest/<experiment id>``, with the headline numbers as metrics.
"""

from __future__ import annotations

import base64
import html
import io
import json
import logging
import math
from typing import Any

log = logging.getLogger(__name__)

REPORT_FILE = "report.html"
RESULTS_FILE = "results.json"


def _png(fig: Any) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _finite(v: Any) -> bool:
    return isinstance(v, int | float) and math.isfinite(v)


def _effects_plot(results: dict[str, Any]) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [(m, c) for m in results["metrics"] for c in m["comparisons"]]
    fig, ax = plt.subplots(figsize=(7, 0.5 + 0.45 * max(len(rows), 1)))
    colours = {"primary": "#1f77b4", "secondary": "#7f7f7f", "guardrail": "#d62728"}
    labels = []
    for i, (m, c) in enumerate(rows):
        y = len(rows) - 1 - i
        labels.append((y, f"{m['name']} ({m['role']}, {m['difference']}) {c['variant']}"))
        if c["error"] or not _finite(c["effect"]):
            ax.text(0, y, "no test: " + str(c["error"])[:60], va="center", fontsize=7)
            continue
        lo = c["ci"][0] if _finite(c["ci"][0]) else c["effect"]
        hi = c["ci"][1] if _finite(c["ci"][1]) else c["effect"]
        ax.errorbar(c["effect"], y, xerr=[[c["effect"] - lo], [hi - c["effect"]]], fmt="o",
                    color=colours[m["role"]], capsize=3)  # fmt: skip
    ax.axvline(0, color="black", lw=0.8)
    ax.set_yticks([y for y, _ in labels], [t for _, t in labels], fontsize=8)
    ax.set_xlabel("effect (treatment - control) with confidence interval")
    ax.set_title("Effects per metric and variant")
    return _png(fig)


def _cumulative_plot(results: dict[str, Any]) -> str | None:
    cum = results.get("cumulative")
    if not cum:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.2))
    for variant, pts in cum["series"].items():
        ok = [p for p in pts if _finite(p["effect"]) and _finite(p["ci"][0]) and _finite(p["ci"][1])]
        if not ok:
            continue
        days = [p["day"] for p in ok]
        ax.plot(days, [p["effect"] for p in ok], marker="o", label=variant)
        ax.fill_between(days, [p["ci"][0] for p in ok], [p["ci"][1] for p in ok], alpha=0.2)
    ax.axhline(0, color="black", lw=0.8)
    ax.set_xlabel("day of the experiment (units by day of first exposure)")
    ax.set_ylabel(f"{cum['metric']} effect ({cum['difference']})")
    ax.set_title("Cumulative effect of the primary metric")
    if ax.get_legend_handles_labels()[0]:
        ax.legend()
    return _png(fig)


def _split_plot(results: dict[str, Any]) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    vs = results["variants"]
    fig, ax = plt.subplots(figsize=(5, 3))
    x = range(len(vs))
    ax.bar([i - 0.2 for i in x], [v["expected_share"] for v in vs], width=0.4, label="expected")
    ax.bar([i + 0.2 for i in x], [v["observed_share"] or 0.0 for v in vs], width=0.4, label="observed")
    ax.set_xticks(list(x), [f"{v['name']}\n{v['units']} units" for v in vs])
    ax.set_ylabel("share of units")
    srm = results["srm"]
    status = "no traffic" if srm is None else ("MISMATCH" if srm["mismatch"] else "ok")
    ax.set_title(f"Traffic split (SRM {status})")
    ax.legend()
    return _png(fig)


def _fmt(v: Any, digits: int = 4) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}g}"
    return html.escape(str(v))


def render_html(results: dict[str, Any]) -> str:
    """Render the self-contained HTML report of one analysis.

    Args:
        results: the results document of :func:`include.abtest.analysis.analyse_window`.

    Returns:
        The HTML page (plots embedded as base64 PNG).
    """
    d = results["decision"]
    srm = results["srm"]
    srm_text = (
        "no traffic yet"
        if srm is None
        else f"{'MISMATCH — experiment invalid' if srm['mismatch'] else 'passed'} "
        f"(chi-square p = {srm['p_value']:.3g}, threshold {srm['threshold']})"
    )
    rows = []
    for m in results["metrics"]:
        for c in m["comparisons"]:
            rows.append(
                "<tr>" + "".join(f"<td>{x}</td>" for x in (
                    _fmt(m["name"]), _fmt(m["role"]), _fmt(m["direction"]), _fmt(c["variant"]),
                    _fmt(c["control_mean"]), _fmt(c["treatment_mean"]), _fmt(c["effect"]),
                    f"{_fmt(c['ci'][0])} .. {_fmt(c['ci'][1])}", _fmt(c["p_value"], 3), _fmt(c["p_adjusted"], 3),
                    _fmt(c["chance_to_win"], 3),
                    _fmt((c["cuped"] or {}).get("variance_reduction"), 3) if c.get("cuped") else "-",
                    _fmt(c["error"]) if c["error"] else "",
                )) + "</tr>"
            )  # fmt: skip
    counts = "".join(f"<tr><td>{_fmt(k)}</td><td>{_fmt(v)}</td></tr>" for k, v in results["counts"].items())
    plots = [("Effects", _effects_plot(results)), ("Cumulative effect", _cumulative_plot(results)),
             ("Traffic split", _split_plot(results))]  # fmt: skip
    imgs = "".join(
        f'<figure><img alt="{html.escape(t)}" src="data:image/png;base64,{p}"></figure>'
        for t, p in plots
        if p
    )
    seq = results["sequential"]
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>A/B {html.escape(results["experiment"])}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1100px}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:3px 6px;font-size:13px}}.d{{font-size:20px;font-weight:bold}}</style>
</head><body>
<h1>A/B experiment {html.escape(results["experiment"])} — model {html.escape(results["model"])}</h1>
<p class="d">Decision: {html.escape(d["decision"])}{" → " + html.escape(str(d["winner"])) if d["winner"] else ""}</p>
<p>{html.escape(d["reason"])}</p>
<p>Window {html.escape(results["window"][0])} .. {html.escape(results["window"][1])}; analysed at
{html.escape(results["as_of"])}. Control: {html.escape(results["control"])}. Alpha {results["alpha"]},
{"sequential (always-valid) intervals, N* = " + _fmt(seq) if seq else "fixed-horizon intervals"},
{html.escape(results["correction"])} correction per family (guardrails unadjusted).</p>
<p>SRM: {html.escape(srm_text)}</p>
{imgs}
<h2>Comparisons</h2>
<table><tr><th>metric</th><th>role</th><th>good direction</th><th>variant</th><th>control</th><th>treatment</th>
<th>effect</th><th>CI</th><th>p</th><th>p adj.</th><th>P(win)</th><th>CUPED var. red.</th><th>error</th></tr>
{"".join(rows)}</table>
<h2>Units and exclusions</h2><table>{counts}</table>
</body></html>
"""


def log_to_mlflow(
    results: dict[str, Any], report_html: str, run_name: str, tracking_uri: str | None = None
) -> dict[str, str]:
    """Log results JSON and the HTML report to one MLflow run.

    The run lives in the MLflow experiment ``abtest/<experiment id>`` (created when absent),
    is tagged with the decision, and carries the primary metric's effect, interval and
    p-value, the units per variant and the SRM p-value as metrics.

    Args:
        results: the results document.
        report_html: the page from :func:`render_html`.
        run_name: name of the run (the Airflow run id).
        tracking_uri: MLflow server (default: ``MLFLOW_TRACKING_URI`` / settings).

    Returns:
        ``{"run_id", "experiment_id", "run_url", "report_url"}``; the URLs open the run and
        the report artifact in the MLflow UI.
    """
    from mlflow.tracking import MlflowClient

    from include.config import get_settings

    uri = tracking_uri or get_settings().tracking_uri
    client = MlflowClient(uri)
    name = f"abtest/{results['experiment']}"
    exp = client.get_experiment_by_name(name)
    exp_id = exp.experiment_id if exp is not None else client.create_experiment(name)
    d = results["decision"]
    run = client.create_run(
        exp_id,
        run_name=run_name,
        tags={
            "modelgate.abtest.decision": d["decision"],
            "modelgate.abtest.model": results["model"],
            "modelgate.abtest.winner": str(d["winner"] or ""),
        },
    )
    rid = run.info.run_id
    try:
        client.log_param(rid, "experiment", results["experiment"])
        client.log_param(rid, "alpha", results["alpha"])
        client.log_param(rid, "window_end", results["window"][1])
        for v in results["variants"]:
            client.log_metric(rid, f"units_{v['name']}", v["units"])
        if results["srm"] is not None:
            client.log_metric(rid, "srm_p_value", results["srm"]["p_value"])
        primary = next(m for m in results["metrics"] if m["role"] == "primary")
        for c in primary["comparisons"]:
            for key, val in (("effect", c["effect"]), ("ci_low", c["ci"][0]), ("ci_high", c["ci"][1]),
                             ("p_value", c["p_value"])):  # fmt: skip
                if _finite(val):
                    client.log_metric(rid, f"{primary['name']}_{c['variant']}_{key}", float(val))
        client.log_text(rid, json.dumps(results, indent=2, default=str), RESULTS_FILE)
        client.log_text(rid, report_html, REPORT_FILE)
        client.set_terminated(rid, "FINISHED")
    except Exception:
        client.set_terminated(rid, "FAILED")
        raise
    base = uri.rstrip("/")
    run_url = f"{base}/#/experiments/{exp_id}/runs/{rid}"
    return {
        "run_id": rid,
        "experiment_id": str(exp_id),
        "run_url": run_url,
        "report_url": f"{base}/get-artifact?path={REPORT_FILE}&run_uuid={rid}",
    }
