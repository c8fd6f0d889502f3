"""The evidence document as one HTML page: timeline, A/B, approvals with answer buttons, routes, audit.

Self-contained (inline CSS and SVG, no script, nothing fetched from elsewhere); every value from the
registry, the audit log or a request body is escaped.
"""

from __future__ import annotations

import json
from html import escape
from typing import Any
from urllib.parse import quote

from include.evidence import approvals as ap
from include.evidence import svg

CSS = """
body{font-family:system-ui,sans-serif;margin:1.5rem;color:#222;max-width:1200px}
h1{font-size:1.5rem}h2{font-size:1.2rem;border-bottom:1px solid #ddd;margin-top:2rem}
table{border-collapse:collapse;margin:.5rem 0}td,th{border:1px solid #ddd;padding:3px 7px;font-size:13px;text-align:left;vertical-align:top}
.good{color:#2e7d32;font-weight:bold}.bad{color:#c62828;font-weight:bold}.warn{color:#ef6c00;font-weight:bold}.none{color:#757575}
.card{border:1px solid #ccc;border-radius:6px;padding:.7rem 1rem;margin:.7rem 0}
button{font-size:14px;margin-right:.5rem;padding:4px 12px}code{font-size:12px}.small{font-size:12px;color:#555}
"""


def _v(verdict: Any) -> str:
    return f'<span class="{svg.tone(str(verdict))}">{escape(str(verdict))}</span>'


def _links(links: dict[str, str]) -> str:
    return " ".join(f'<a href="{escape(u)}">{escape(k)}</a>' for k, u in links.items())


def _audit_refs(seqs: list[int]) -> str:
    return " ".join(f'<a href="#audit-{s}">#{s}</a>' for s in seqs)


def _detail(d: dict[str, Any]) -> str:
    items = []
    for k, val in d.items():
        if val in (None, "", [], {}):
            continue
        text = val if isinstance(val, str) else json.dumps(val, default=str)
        items.append(f"<b>{escape(k)}</b>: {escape(text[:600])}")
    return "<br>".join(items)


def _timeline(doc: dict[str, Any]) -> str:
    out = ["<h2>Versions and gate verdicts</h2>", svg.stage_timeline(doc["timeline"])]
    for v in doc["timeline"]:
        out.append(f'<h3 id="v{escape(v["version"])}">Version {escape(v["version"])} '
                   f'<span class="small">{escape(str(v.get("semver") or ""))}</span></h3>')  # fmt: skip
        out.append("<table><tr><th>gate</th><th>verdict</th><th>when</th><th>by</th><th>evidence</th><th>links</th><th>audit</th></tr>")
        for g in v["gates"]:
            out.append(
                f'<tr class="gate" data-gate="{escape(g["gate"])}"><td>{escape(g["gate"])}</td><td>{_v(g["verdict"])}</td>'
                f"<td>{escape(str(g['at'] or ''))}</td><td>{escape(str(g['by'] or ''))}</td><td>{_detail(g['detail'])}</td>"
                f"<td>{_links(g['links'])}</td><td>{_audit_refs(g['audit'])}</td></tr>"
            )
        out.append("</table>")
    return "\n".join(out)


def _abtests(doc: dict[str, Any]) -> str:
    out = ["<h2>A/B experiments</h2>"]
    if not doc["abtests"]:
        out.append("<p>No A/B analysis of this model yet.</p>")
    for a in doc["abtests"]:
        srm = a.get("srm") or {}
        out.append(
            f'<div class="card abtest"><b>{escape(str(a["experiment"]))}</b> ({escape(str(a["at"] or ""))}): decision '
            f"{_v(a['decision'])}, winner {escape(str(a['winner'] or '-'))} (version {escape(str(a['winner_version'] or '-'))}); "
            f"approval {_v(a['approval'] or 'none')} {escape(str(a['approval_reason'] or ''))}<br>"
            f"Rule: {escape(str(a['reason'] or ''))}<br>"
            f"SRM p = {escape(str(srm.get('p_value', '-')))} {_links(a['links'])} {_audit_refs(a['audit'])}"
        )
        rows = [{"label": f"{e['metric']} / {e['variant']}", **e} for e in a["effects"] if not e.get("error")]
        out.append(svg.interval_plot(rows, f"{a['experiment']}: effect and interval per metric"))
        out.append("<table><tr><th>metric</th><th>role</th><th>variant</th><th>effect</th><th>interval</th><th>p (adj.)</th></tr>")
        for e in a["effects"]:
            out.append(
                f"<tr><td>{escape(str(e['metric']))}</td><td>{escape(str(e['role']))}</td><td>{escape(str(e['variant']))}</td>"
                f"<td class='effect'>{_n(e['effect'])}</td><td>[{_n(e['low'])}, {_n(e['high'])}]</td><td>{_n(e['p_adjusted'])}</td></tr>"
            )
        out.append("</table></div>")
    return "\n".join(out)


def _n(x: Any) -> str:
    return "-" if x is None else escape(f"{x:.4g}" if isinstance(x, float) else str(x))


def _body(body: str) -> str:
    tables = ap.markdown_tables(body)
    lines = [ln for ln in body.splitlines() if not ln.strip().startswith("|")]
    out = [f"<p>{escape(ln)}</p>" for ln in lines if ln.strip()]
    for t in tables:
        if not t:
            continue
        head = "".join(f"<th>{escape(h)}</th>" for h in t[0])
        rows = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in r.values()) + "</tr>" for r in t)
        out.append(f"<table><tr>{head}</tr>{rows}</table>")
    return "\n".join(out)


def _approvals(doc: dict[str, Any], prefix: str) -> str:
    out = ["<h2>Pending approvals</h2>"]
    if not doc["approvals"]:
        out.append("<p>No approval about this model is waiting.</p>")
    for a in doc["approvals"]:
        action = (
            f"{prefix}/api/approvals/{quote(a['dag_id'], safe='')}/{quote(a['dag_run_id'], safe='')}/"
            f"{quote(a['task_id'], safe='')}/{int(a['map_index'])}"
        )
        out.append(f'<div class="card approval"><b>{escape(a["subject"] or "")}</b> '
                   f'<span class="small">{escape(a["dag_id"])} / {escape(a["dag_run_id"])} / {escape(a["task_id"])}</span>')  # fmt: skip
        out.append(_body(a["body"]))
        out.append(svg.interval_plot(a["intervals"], f"{a['subject']}: effect and interval per metric"))
        out.append("<ul>" + "".join(
            f"<li><b>{escape(o['option'])}</b>: {escape(o['effect'] or '')}</li>" for o in a["options"]) + "</ul>")  # fmt: skip
        if a["may_answer"]:
            out.append(f'<form method="post" action="{escape(action)}">'
                       f'<input type="hidden" name="model" value="{escape(doc["model"])}">')
            out += [f'<button type="submit" name="option" value="{escape(o["option"])}">{escape(o["option"])}</button>' for o in a["options"]]
            out.append("</form>")
        else:
            out.append(f"<p class='small'>Only {escape(', '.join(a['assigned_users']))} may answer.</p>")
        out.append("</div>")
    return "\n".join(out)


def _desired(doc: dict[str, Any]) -> str:
    d = doc.get("desired") or {}
    if d.get("error"):
        return f"<p class='bad'>Control plane not readable: {escape(d['error'])}</p>"
    weights = ", ".join(f"{escape(k)} {w:g}" for k, w in (d.get("weights") or {}).items()) or "no routes"
    return (
        f"<p id='desired'>Desired (control plane): generation {escape(str(d.get('generation')))}; this model "
        f"{weights} (changed at generation {escape(str(d.get('model_generation') or '-'))} by "
        f"{escape(str(d.get('actor') or '-'))}: {escape(str(d.get('reason') or ''))})</p>"
    )


def _replicas(doc: dict[str, Any]) -> str:
    out = ["<h2>Routes per router replica</h2>", _desired(doc),
           "<table><tr><th>replica</th><th>ready</th><th>generation</th><th>stale</th><th>weights (%)</th><th>error</th></tr>"]  # fmt: skip
    for r in doc["replicas"]:
        stale = "unknown" if r["stale"] is None else ("stale" if r["stale"] else "current")
        if r.get("behind"):
            stale += ", behind the control plane"
        weights = ", ".join(f"{escape(k)} {w:g}" for k, w in r["weights"].items()) or "not served"
        out.append(
            f"<tr class='replica'><td>{escape(r['url'])}</td><td>{_v('pass' if r['ready'] else 'fail')}</td>"
            f"<td>{escape(str(r['generation'] if r['generation'] is not None else 'unknown'))}</td><td>{escape(stale)}</td>"
            f"<td>{weights}</td><td>{escape(r['error'] or '')}</td></tr>"
        )
    out.append("</table>")
    return "\n".join(out)


def _audit(doc: dict[str, Any]) -> str:
    a = doc["audit"]
    status = _v("pass" if a["verified"] else "fail")
    out = [f"<h2>Audit log</h2><p id='audit-status'>Chain verification: {status} "
           f"({a['total']} records in the log, {len(a['records'])} about this model)</p>"]  # fmt: skip
    out += [f"<p class='bad'>{escape(p)}</p>" for p in a["problems"]]
    out.append("<table><tr><th>#</th><th>when</th><th>actor</th><th>action</th><th>subject</th><th>after</th><th>run</th></tr>")
    for r in reversed(a["records"]):
        after = json.dumps(r["after"], default=str)
        out.append(
            f"<tr id='audit-{int(r['seq'])}'><td>{int(r['seq'])}</td><td>{escape(r['ts'])}</td><td>{escape(r['actor'])}</td>"
            f"<td>{escape(r['action'])}</td><td>{escape(r['subject'])}</td><td><code>{escape(after[:400])}</code></td>"
            f"<td>{escape(str(r['run_id'] or ''))}</td></tr>"
        )
    out.append("</table>")
    return "\n".join(out)


def render(doc: dict[str, Any], prefix: str, user: str, notice: str | None = None) -> str:
    """Return the HTML page of an evidence document.

    Args:
        doc: from :func:`include.evidence.gather.gather`.
        prefix: the URL path the plugin is mounted at (answer forms post there).
        user: who is viewing (shown).
        notice: a message to show at the top (e.g. the result of an answer).

    Returns:
        The page.
    """
    aliases = ", ".join(f"{escape(k)} → v{escape(v)}" for k, v in sorted(doc["aliases"].items())) or "none"
    head = (
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>modelgate: {escape(doc['model'])}</title>"
        f"<style>{CSS}</style></head><body><h1>modelgate evidence: <span id='model'>{escape(doc['model'])}</span></h1>"
        f"<p class='small'>Signed in as {escape(user)}. Aliases: {aliases}.</p>"
    )
    note = f"<p class='card' id='notice'>{escape(notice)}</p>" if notice else ""
    parts = [head, note, _approvals(doc, prefix), _timeline(doc), _abtests(doc), _replicas(doc), _audit(doc)]
    return "\n".join(parts) + "</body></html>"
