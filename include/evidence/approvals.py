"""Pending human approvals as evidence: what is asked, the figures behind it, what each answer does.

Input is the Airflow REST API's human-in-the-loop details (``hitlDetails`` items, plain dicts); the
gates write their evidence into the request's Markdown body (the canary judge table, the A/B effects),
so the figures are read back from its table for the interval plots.
"""

from __future__ import annotations

import re
from typing import Any

CONSEQUENCES: dict[str, dict[str, str]] = {
    "canary_promotion": {
        "approve": "the canary goes on: the next stage's weight is set on every replica",
        "reject": "the canary is rolled back: all traffic returns to the champion",
    },
    "ab_analysis": {
        "approve": "the winner becomes champion: registry alias and router traffic move to it",
        "reject": "nothing is shipped; the decision and its reason are recorded in the audit log",
    },
}
"""What each answer leads to, per gate DAG (options not listed are shown without a note)."""

_NUM = r"[-+]?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|∞|inf)"
_BRACKET = re.compile(rf"^\s*({_NUM}|-)\s*\[\s*({_NUM})\s*,\s*({_NUM})\s*\]\s*$")
_RANGE = re.compile(rf"^\s*({_NUM})\s*\.\.\s*({_NUM})\s*$")


def _num(text: str) -> float | None:
    t = text.strip().replace("\u2212", "-")
    if t in ("∞", "inf", "+∞"):
        return float("inf")
    if t in ("-∞", "-inf"):
        return float("-inf")
    try:
        return float(t)
    except ValueError:
        return None


def markdown_tables(body: str) -> list[list[dict[str, str]]]:
    """Return the Markdown tables of a text as lists of rows keyed by header."""
    tables: list[list[dict[str, str]]] = []
    lines = [ln.strip() for ln in (body or "").splitlines()]
    i = 0
    while i < len(lines) - 1:
        if lines[i].startswith("|") and re.fullmatch(r"\|(\s*:?-{3,}:?\s*\|)+", lines[i + 1]):
            header = [h.strip() for h in lines[i].strip("|").split("|")]
            rows = []
            i += 2
            while i < len(lines) and lines[i].startswith("|"):
                cells = [c.strip() for c in lines[i].strip("|").split("|")]
                rows.append(dict(zip(header, cells + [""] * (len(header) - len(cells)), strict=False)))
                i += 1
            tables.append(rows)
        else:
            i += 1
    return tables


def intervals(body: str) -> list[dict[str, Any]]:
    """Return the effects with intervals found in a request's tables (canary judge or A/B effects).

    A row counts when it has an ``effect [low, high]`` cell (canary judge) or an ``effect`` and a
    ``CI`` cell ``low .. high`` (A/B).

    Returns:
        ``[{"label", "effect", "low", "high"}]``.
    """
    out: list[dict[str, Any]] = []
    for table in markdown_tables(body):
        for row in table:
            label = " / ".join(v for k, v in row.items() if k in ("metric", "variant") and v)
            cell = row.get("effect [interval]")
            if cell is not None:
                m = _BRACKET.match(cell)
                if m:
                    out.append({"label": label, "effect": _num(m[1]), "low": _num(m[2]), "high": _num(m[3])})
                continue
            if "effect" in row and "CI" in row:
                m2 = _RANGE.match(row["CI"])
                if m2:
                    out.append({"label": label, "effect": _num(row["effect"]), "low": _num(m2[1]), "high": _num(m2[2])})
    return out


def concerns(detail: dict[str, Any], model: str) -> bool:
    """Whether a request is about ``model`` (its subject or body names it)."""
    pattern = re.compile(rf"(?<![\w-]){re.escape(model)}(?![\w-])")
    return bool(pattern.search(detail.get("subject") or "") or pattern.search(detail.get("body") or ""))


def pending(details: list[dict[str, Any]], model: str, user_id: str | None) -> list[dict[str, Any]]:
    """Return the unanswered requests about ``model`` with their evidence and who may answer.

    Args:
        details: ``hitlDetails`` items from the Airflow REST API.
        model: the model name.
        user_id: the viewing user's id (to say whether they may answer).

    Returns:
        One entry per request: ids, subject, body, options with consequences, assigned users,
        ``may_answer``, the intervals found in the body.
    """
    out = []
    for d in details:
        if d.get("response_received") or not concerns(d, model):
            continue
        ti = d.get("task_instance") or {}
        assigned = [u.get("id") for u in d.get("assigned_users") or []]
        notes = CONSEQUENCES.get(str(ti.get("dag_id")), {})
        out.append(
            {
                "dag_id": ti.get("dag_id"),
                "dag_run_id": ti.get("dag_run_id"),
                "task_id": ti.get("task_id"),
                "map_index": ti.get("map_index", -1),
                "state": ti.get("state"),
                "created_at": d.get("created_at"),
                "subject": d.get("subject"),
                "body": d.get("body") or "",
                "options": [{"option": o, "effect": notes.get(o.lower())} for o in d.get("options") or []],
                "assigned_users": assigned,
                "may_answer": not assigned or user_id in assigned,
                "intervals": intervals(d.get("body") or ""),
            }
        )
    return out
