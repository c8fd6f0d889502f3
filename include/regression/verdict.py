"""The regression verdict: checks combined, evidence left (report, metrics, version tags, audit record)."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

import numpy as np

from include.regression import checks as ck
from include.regression.policy import Policy
from include.regression.runstore import CHALLENGER_SCORES, CHAMPION_SCORES, log_bytes, predictions, read_frame
from modelgate_contracts.tags import REGRESSION_PREFIX
from modelgate_contracts.uris import version_uri

log = logging.getLogger(__name__)

TAG_PREFIX = REGRESSION_PREFIX
MAX_TAG_CHARS = 4000
FIRST_VERSION_REASON = "first version: no champion to compare with"


def tag_value(v: Any) -> str:
    if isinstance(v, float):
        return repr(round(v, 6)) if np.isfinite(v) else str(v)
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)[:MAX_TAG_CHARS]


def verdict_tags(report: dict[str, Any]) -> dict[str, str]:
    """Return every ``modelgate.regression.*`` tag of a report: verdict, reasons, each check's status and figures.

    Args:
        report: the report document from :func:`decide`.

    Returns:
        Tag name → string value.
    """
    tags = {
        TAG_PREFIX + "verdict": report["verdict"],
        TAG_PREFIX + "reasons": json.dumps(report["reasons"])[:MAX_TAG_CHARS],
        TAG_PREFIX + "champion_version": str(report["champion_version"]),
        TAG_PREFIX + "checked_at": report["checked_at"],
        TAG_PREFIX + "airflow_run_id": str(report["airflow_run_id"]),
        TAG_PREFIX + "mlflow_run_id": report["mlflow_run_id"],
        TAG_PREFIX + "report": f"runs:/{report['mlflow_run_id']}/report/report.html",
        TAG_PREFIX + "policy_sha256": report["policy_sha256"],
        TAG_PREFIX + "policy_sources": ",".join(report["policy"].get("sources", [])),
    }
    for c in report["checks"]:
        tags[f"{TAG_PREFIX}{c['name']}.status"] = c["status"]
        for k, v in c["figures"].items():
            tags[f"{TAG_PREFIX}{c['name']}.{k}"] = tag_value(v)
    return tags


def decide(
    target: dict[str, Any],
    results: list[dict[str, Any]],
    mlflow_run_id: str,
    actor: str,
    airflow_run_id: str,
    tracking_uri: str,
) -> dict[str, Any]:
    """Combine the checks into the verdict and leave the evidence: report, tags, metrics, audit record.

    Args:
        target: from :func:`resolve_target`.
        results: every check result as data (inputs, contract, outputs, determinism, agreement,
            distribution, quality, latency).
        mlflow_run_id: from :func:`start_run`.
        actor: who acts (audit).
        airflow_run_id: the Airflow run id.
        tracking_uri: the MLflow server.

    Returns:
        ``verdict``, ``reasons``, ``model_name``, ``version``, ``mlflow_run_id``, ``report``.
    """
    from include.registry import registry as reg
    from include.registry.audit import append_audit
    from include.regression import report as rp

    policy = Policy.from_dict(target["policy"])
    checks = ck.excuse_drift([ck.CheckResult.from_dict(r) for r in results], policy)
    verdict, reasons = ck.verdict(checks)
    name, version = target["model_name"], target["version"]
    doc = {
        "model_name": name,
        "version": version,
        "champion_version": target["champion_version"],
        "verdict": verdict,
        "reasons": reasons,
        "checks": [c.to_dict() for c in checks],
        "policy": target["policy"],
        "policy_sha256": policy.sha256(),
        "challenger": {k: target["challenger"][k] for k in ("semver", "feature_spec")},
        "champion": {k: target["champion"][k] for k in ("semver", "feature_spec")},
        "rows": next((c.figures.get("rows") for c in checks if c.name == "inputs"), 0),
        "checked_at": datetime.now(UTC).isoformat(),
        "airflow_run_id": airflow_run_id,
        "mlflow_run_id": mlflow_run_id,
    }
    scores = scores_for_plots(mlflow_run_id, tracking_uri)
    images = rp.plots(*scores, policy.distribution.bins, latency_figures(checks))
    client = reg.get_client(tracking_uri)
    report_json = json.dumps(doc, indent=1, default=str).encode()
    log_bytes(mlflow_run_id, "report/report.json", report_json, tracking_uri)
    log_bytes(mlflow_run_id, "report/report.html", rp.render_html(doc, images).encode(), tracking_uri)
    metrics = {
        f"{c.name}.{k}": float(v)
        for c in checks
        for k, v in c.figures.items()
        if isinstance(v, int | float) and not isinstance(v, bool) and np.isfinite(v)
    }
    for key, value in metrics.items():
        client.log_metric(mlflow_run_id, key, value)
    client.set_tag(mlflow_run_id, "modelgate.regression.verdict", verdict)
    client.set_terminated(mlflow_run_id, "FINISHED")
    reg.set_version_tags(name, version, verdict_tags(doc), actor=actor, run_id=airflow_run_id,
                         tracking_uri=tracking_uri)
    append_audit(
        actor,
        "regression_verdict",
        version_uri(name, version),
        None,
        {
            "verdict": verdict,
            "reasons": reasons,
            "champion_version": target["champion_version"],
            "mlflow_run_id": mlflow_run_id,
            "policy_sha256": doc["policy_sha256"],
        },
        airflow_run_id,
    )
    log.info("models:/%s/%s regression verdict %s %s", name, version, verdict, reasons)
    return {
        "verdict": verdict,
        "reasons": reasons,
        "model_name": name,
        "version": version,
        "mlflow_run_id": mlflow_run_id,
        "report": f"runs:/{mlflow_run_id}/report/report.html",
    }


def scores_for_plots(mlflow_run_id: str, tracking_uri: str) -> tuple[np.ndarray | None, np.ndarray | None]:
    from mlflow.exceptions import MlflowException

    out: list[np.ndarray | None] = []
    for path in (CHAMPION_SCORES, CHALLENGER_SCORES):
        try:
            out.append(predictions(read_frame(mlflow_run_id, path, tracking_uri)).positive_scores)
        except (MlflowException, OSError):
            out.append(None)
    return out[0], out[1]


def latency_figures(checks: list[ck.CheckResult]) -> dict[str, Any] | None:
    lat = next((c for c in checks if c.name == "latency"), None)
    return lat.figures if lat is not None and lat.status != "skipped" else None


def record_first_version(target: dict[str, Any], actor: str, run_id: str, tracking_uri: str) -> bool:
    """For a version with no champion to compare with, record verdict ``pass`` and stop.

    Args:
        target: from :func:`resolve_target`.
        actor: who acts (audit).
        run_id: the Airflow run id.
        tracking_uri: the MLflow server.

    Returns:
        True when there is a champion and the gate must run; False after recording the first-version pass.
    """
    if not target["first_version"]:
        return True
    from include.registry import registry as reg
    from include.registry.audit import append_audit

    name, version = target["model_name"], target["version"]
    tags = {
        TAG_PREFIX + "verdict": "pass",
        TAG_PREFIX + "reasons": json.dumps([FIRST_VERSION_REASON]),
        TAG_PREFIX + "champion_version": "",
        TAG_PREFIX + "checked_at": datetime.now(UTC).isoformat(),
        TAG_PREFIX + "airflow_run_id": run_id,
    }
    reg.set_version_tags(name, version, tags, actor=actor, run_id=run_id, tracking_uri=tracking_uri)
    append_audit(
        actor,
        "regression_verdict",
        version_uri(name, version),
        None,
        {"verdict": "pass", "reasons": [FIRST_VERSION_REASON], "champion_version": None},
        run_id,
    )
    log.info("models:/%s/%s: %s", name, version, FIRST_VERSION_REASON)
    return False
