"""Gather a model's evidence from MLflow, the audit log and the router replicas into one document.

The document is what the plugin serves as JSON at ``/modelgate/api/models/{name}`` and renders as the
page: ``model``, ``aliases``, ``timeline`` (versions with gate verdicts), ``abtests``, ``desired`` (the
control plane's routes and generation), ``replicas``,
``approvals`` and ``audit`` (records of this model and the log's verification status).
"""

from __future__ import annotations

import json
import logging
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from include.evidence import approvals as ap
from include.evidence import replicas as rp
from include.evidence import timeline as tl
from include.evidence.errors import InvalidModelName, ModelNotFound, RegistryUnavailable
from include.evidence.links import Links
from modelgate_contracts.routes import NAME_PATTERN

log = logging.getLogger(__name__)

AB_RUNS = 5
"""How many of a model's newest A/B analysis runs are shown."""


@dataclass(frozen=True)
class Sources:
    """Where the evidence is read from.

    Args:
        tracking_uri: MLflow as this process reaches it.
        mlflow_url: MLflow as a browser reaches it (links); default ``tracking_uri``.
        airflow_url: the Airflow UI base URL for DAG run links ("" = same server as the page).
        replicas: router replica base URLs.
        router_token: router admin bearer token (read rights).
        audit_url: audit database URL (None: the settings' default).
    """

    tracking_uri: str
    mlflow_url: str | None = None
    airflow_url: str = ""
    replicas: list[str] = field(default_factory=list)
    router_token: str = ""
    audit_url: str | None = None


def check_name(model: str) -> str:
    """Return ``model`` when it is a valid model name.

    Raises:
        InvalidModelName: it is not.
    """
    if not re.fullmatch(NAME_PATTERN, model or ""):
        raise InvalidModelName(f"invalid model name {model!r}: 1-64 letters, digits, '_', '.', '-'")
    return model


def _versions(client: Any, model: str) -> tuple[dict[str, str], list[dict[str, Any]]]:
    from mlflow.exceptions import MlflowException

    try:
        rm = client.get_registered_model(model)
    except MlflowException as e:
        if getattr(e, "error_code", "") == "RESOURCE_DOES_NOT_EXIST":
            raise ModelNotFound(f"no registered model named {model!r}") from e
        raise RegistryUnavailable(f"MLflow could not be read: {e.message}") from e
    except OSError as e:
        raise RegistryUnavailable(f"MLflow could not be reached: {e}") from e
    versions = [
        {"version": str(v.version), "created": _ms(v.creation_timestamp), "tags": dict(v.tags or {}), "run_id": v.run_id}
        for v in client.search_model_versions(f"name='{model}'")
    ]
    return {a: str(v) for a, v in (rm.aliases or {}).items()}, versions


def _ms(ms: int | None) -> str | None:
    from datetime import UTC, datetime

    return None if ms is None else datetime.fromtimestamp(ms / 1000, UTC).isoformat()


def _ab_runs(client: Any, model: str) -> list[dict[str, Any]]:
    from mlflow.exceptions import MlflowException

    try:
        exps = client.search_experiments(filter_string="name LIKE 'abtest/%'")
        if not exps:
            return []
        runs = client.search_runs(
            [e.experiment_id for e in exps],
            filter_string=f"tags.`modelgate.abtest.model` = '{model}'",
            order_by=["attributes.start_time DESC"],
            max_results=AB_RUNS,
        )
    except MlflowException as e:
        log.warning("A/B runs of %s could not be read: %s", model, e)
        return []
    out = []
    for r in runs:
        out.append(
            {
                "run_id": r.info.run_id,
                "experiment_id": r.info.experiment_id,
                "experiment": r.data.params.get("experiment") or r.info.run_name,
                "tags": dict(r.data.tags),
                "start": _ms(r.info.start_time),
                "results": _results(client, r.info.run_id),
            }
        )
    return out


def _results(client: Any, run_id: str) -> dict[str, Any] | None:
    from mlflow.exceptions import MlflowException

    try:
        with tempfile.TemporaryDirectory() as tmp:
            path = client.download_artifacts(run_id, "results.json", tmp)
            doc = json.loads(Path(path).read_text())
            return doc if isinstance(doc, dict) else None
    except (MlflowException, OSError, ValueError) as e:
        log.warning("results of A/B run %s could not be read: %s", run_id, e)
        return None


def _experiment_ids(client: Any, run_ids: set[str]) -> dict[str, str]:
    from mlflow.exceptions import MlflowException

    out = {}
    for rid in run_ids:
        try:
            out[rid] = str(client.get_run(rid).info.experiment_id)
        except MlflowException:
            continue
    return out


def relevant(record: dict[str, Any], model: str, experiments: set[str]) -> bool:
    """Whether an audit record is about ``model`` (its versions, aliases, routes or A/B experiments)."""
    s = record["subject"]
    return (
        s == f"models:/{model}"
        or s.startswith((f"models:/{model}/", f"models:/{model}@"))
        or s == f"routes:{model}"
        or (s.startswith("abtest:") and s[len("abtest:") :] in experiments)
    )


def audit_section(model: str, experiments: set[str], url: str | None) -> dict[str, Any]:
    """Return the model's audit records (oldest first) and the whole log's verification status."""
    from include.registry.audit import read_records, verify
    from include.registry.errors import AuditError

    try:
        records = [r.__dict__ | {"seq": r.id} for r in read_records(url)]
    except AuditError as e:
        return {"records": [], "verified": False, "problems": [str(e)], "notes": [], "total": 0}
    mine = [{k: v for k, v in r.items() if k not in ("id", "prev_mac")} for r in records if relevant(r, model, experiments)]
    try:
        res = verify(url)
        status = {"verified": res.ok, "problems": res.problems, "notes": res.notes}
    except AuditError as e:
        status = {"verified": False, "problems": [str(e)], "notes": []}
    return {"records": mine, "total": len(records), **status}


def gather(
    model: str,
    sources: Sources,
    hitl_details: list[dict[str, Any]] | None = None,
    user_id: str | None = None,
) -> dict[str, Any]:
    """Return the evidence document of ``model``.

    Args:
        model: the registered model name.
        sources: where to read.
        hitl_details: the human-in-the-loop requests the viewing user can see (Airflow REST items).
        user_id: the viewing user's id.

    Returns:
        The document (see the module docstring).

    Raises:
        InvalidModelName: bad name.
        ModelNotFound: no such model.
        RegistryUnavailable: MLflow is down.
    """
    from mlflow.tracking import MlflowClient

    check_name(model)
    client = MlflowClient(sources.tracking_uri)
    aliases, versions = _versions(client, model)
    abruns = _ab_runs(client, model)
    experiments = {r["experiment"] for r in abruns}
    audit = audit_section(model, experiments, sources.audit_url)
    reg_runs = {v["tags"].get(tl.REGRESSION + "mlflow_run_id") for v in versions} - {None}
    exp_ids = _experiment_ids(client, {str(r) for r in reg_runs}) | {r["run_id"]: r["experiment_id"] for r in abruns}
    links = Links(sources.mlflow_url or sources.tracking_uri, sources.airflow_url, exp_ids)
    want = rp.desired(model, sources.audit_url)
    return {
        "model": model,
        "aliases": aliases,
        "timeline": tl.version_timeline(model, versions, audit["records"], links),
        "abtests": [tl.ab_entry(r, audit["records"], links) for r in abruns],
        "desired": want,
        "replicas": [
            s | {"weights": rp.weights(s["routes"]), "behind": rp.behind(s, want["generation"])}
            for s in rp.replica_states(sources.replicas, sources.router_token, model)
        ],
        "approvals": ap.pending(hitl_details or [], model, user_id),
        "audit": audit,
    }
