"""A model's history as data: each version with every gate's verdict, the A/B experiments, promotions.

Pure functions over plain data (version tags, audit records, A/B runs), so that the view is tested
without a server; :mod:`include.evidence.gather` reads that data from MLflow and the audit log.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from modelgate_contracts import tags as T

log = logging.getLogger(__name__)

REGRESSION = T.REGRESSION_PREFIX
CANARY = T.CANARY_PREFIX
DAGS = {"registration": "model_registration", "regression": "regression_testing", "canary": "canary_promotion"}
"""The DAG that leaves each gate's verdict (its runs are linked from the timeline)."""
MAX_STAGES = 20


def _json(raw: str | None) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def _seqs(audits: list[dict[str, Any]], subject: str, actions: tuple[str, ...]) -> list[int]:
    return [a["seq"] for a in audits if a["subject"] == subject and a["action"] in actions]


def gate(
    name: str,
    verdict: str,
    *,
    at: str | None = None,
    by: str | None = None,
    detail: dict[str, Any] | None = None,
    links: dict[str, str | None] | None = None,
    audit: list[int] | None = None,
) -> dict[str, Any]:
    """Return one gate's entry of the timeline (links without a target are left out)."""
    return {
        "gate": name,
        "verdict": verdict,
        "at": at,
        "by": by,
        "detail": detail or {},
        "links": {k: v for k, v in (links or {}).items() if v},
        "audit": audit or [],
    }


def _registration(model: str, v: dict[str, Any], audits: list[dict[str, Any]], links: Any) -> dict[str, Any]:
    tags = v["tags"]
    run = tags.get(T.RUN_ID)
    return gate(
        "registration",
        "registered" if tags.get(T.STATUS) == "ready" else (tags.get(T.STATUS) or "incomplete"),
        at=v.get("created"),
        by=tags.get(T.REGISTERED_BY),
        detail={"semver": tags.get(T.SEMVER), "sha256": tags.get(T.SHA256)},
        links={"airflow run": links.dag_run(DAGS["registration"], run)},
        audit=_seqs(audits, f"models:/{model}/{v['version']}", ("register",)),
    )


def _regression(model: str, v: dict[str, Any], audits: list[dict[str, Any]], links: Any) -> dict[str, Any]:
    tags = v["tags"]
    verdict = tags.get(REGRESSION + "verdict")
    if verdict is None:
        return gate("regression", "not run")
    rid = tags.get(REGRESSION + "mlflow_run_id")
    checks = {
        k[len(REGRESSION) : -len(".status")]: val
        for k, val in tags.items()
        if k.startswith(REGRESSION) and k.endswith(".status")
    }
    return gate(
        "regression",
        verdict,
        at=tags.get(REGRESSION + "checked_at"),
        detail={
            "reasons": _json(tags.get(REGRESSION + "reasons")) or [],
            "champion_version": tags.get(REGRESSION + "champion_version"),
            "checks": checks,
        },
        links={
            "report": links.artifact(rid, "report/report.html"),
            "mlflow run": links.run(rid),
            "airflow run": links.dag_run(DAGS["regression"], tags.get(REGRESSION + "airflow_run_id")),
        },
        audit=_seqs(audits, f"models:/{model}/{v['version']}", ("regression_verdict",)),
    )


def _canary(model: str, v: dict[str, Any], audits: list[dict[str, Any]], links: Any) -> list[dict[str, Any]]:
    tags = v["tags"]
    run = tags.get(CANARY + "run_id")
    out = []
    for i in range(MAX_STAGES):
        s = _json(tags.get(f"{CANARY}stage_{i}"))
        if not isinstance(s, dict):
            continue
        out.append(
            gate(
                f"canary stage {i} ({s.get('percent', '?')} %)",
                str(s.get("decision")),
                at=(s.get("window") or [None, None])[-1],
                by=s.get("approved_by"),
                detail={k: s.get(k) for k in ("score", "metrics", "n", "reasons") if k in s},
                links={"airflow run": links.dag_run(DAGS["canary"], run)},
            )
        )
    verdict = tags.get(CANARY + "verdict")
    if verdict:
        subject = f"models:/{model}/{v['version']}"
        seqs = [a["seq"] for a in audits if a["subject"] == subject and a["action"].startswith("canary.")]
        record = next((a["after"] for a in audits if a["seq"] in seqs and isinstance(a["after"], dict)), {})
        guard = record.get("guard_events") or []
        detail = {"reason": tags.get(CANARY + "reason"), "stage": record.get("stage"), "guard": guard}
        out.append(
            gate(
                "canary",
                verdict,
                detail=detail,
                links={"airflow run": links.dag_run(DAGS["canary"], run)},
                audit=seqs,
            )
        )
    return out


def _promotions(model: str, version: str, audits: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for a in audits:
        after = a["after"] if isinstance(a["after"], dict) else {}
        if a["action"] == "set_alias" and a["subject"] == f"models:/{model}@champion":
            if str(after.get("version")) == version:
                out.append(gate("promotion", "champion", at=a["ts"], by=a["actor"],
                                detail={"reason": after.get("reason")}, audit=[a["seq"]]))  # fmt: skip
            elif str((a["before"] or {}).get("version")) == version:
                out.append(gate("promotion", "demoted", at=a["ts"], by=a["actor"],
                                detail={"reason": after.get("reason")}, audit=[a["seq"]]))  # fmt: skip
        elif a["action"] == "champion.rollback" and a["subject"] == f"models:/{model}":
            if str(after.get("champion")) == version or str((a["before"] or {}).get("champion")) == version:
                role = "champion" if str(after.get("champion")) == version else "demoted"
                out.append(gate("rollback", role, at=a["ts"], by=a["actor"],
                                detail={"reason": after.get("reason")}, audit=[a["seq"]]))  # fmt: skip
    return out


def version_timeline(
    model: str, versions: list[dict[str, Any]], audits: list[dict[str, Any]], links: Any
) -> list[dict[str, Any]]:
    """Return each version (oldest first) with its gates in lifecycle order.

    Args:
        model: the model name.
        versions: ``{"version", "created", "tags"}`` per version.
        audits: the model's audit records as dicts (``seq``, ``ts``, ``actor``, ``action``, ...).
        links: a :class:`include.evidence.links.Links` (URLs of runs, reports, DAG runs).

    Returns:
        ``[{"version", "semver", "gates": [...]}]``.
    """
    out = []
    for v in sorted(versions, key=lambda x: int(x["version"])):
        gates = [_registration(model, v, audits, links), _regression(model, v, audits, links)]
        gates += _canary(model, v, audits, links)
        gates += _promotions(model, str(v["version"]), audits)
        out.append({"version": str(v["version"]), "semver": v["tags"].get(T.SEMVER), "gates": gates})
    return out


def ab_entry(run: dict[str, Any], audits: list[dict[str, Any]], links: Any) -> dict[str, Any]:
    """Return one A/B analysis run as evidence: decision, effects with intervals, SRM, approval.

    Args:
        run: ``{"run_id", "experiment", "tags", "start", "results"}`` (``results`` is the analysis'
            results document, None when it could not be read).
        audits: the audit records as dicts.
        links: URLs of runs and reports.

    Returns:
        The A/B entry.
    """
    tags, results = run["tags"], run.get("results") or {}
    exp = run["experiment"]
    decision = results.get("decision") or {}
    effects = []
    for m in results.get("metrics", []):
        for c in m.get("comparisons", []):
            low, high = (c.get("ci") or [None, None])[:2]
            effects.append(
                {
                    "metric": m["name"],
                    "role": m.get("role"),
                    "variant": c["variant"],
                    "effect": c.get("effect"),
                    "low": low,
                    "high": high,
                    "p_adjusted": c.get("p_adjusted"),
                    "error": c.get("error"),
                }
            )
    return {
        "experiment": exp,
        "at": run.get("start"),
        "decision": tags.get("modelgate.abtest.decision"),
        "reason": decision.get("reason"),
        "winner": tags.get("modelgate.abtest.winner") or None,
        "winner_version": decision.get("winner_version"),
        "approval": tags.get("modelgate.abtest.approval"),
        "approval_reason": tags.get("modelgate.abtest.approval_reason"),
        "srm": results.get("srm"),
        "effects": effects,
        "links": {
            k: u
            for k, u in (("report", links.artifact(run["run_id"], "report.html")), ("mlflow run", links.run(run["run_id"])))
            if u
        },
        "audit": [a["seq"] for a in audits if a["subject"] == f"abtest:{exp}"],
    }
