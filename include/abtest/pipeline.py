"""Steps of the ``ab_analysis`` DAG as plain functions (the DAG's tasks only call these).

Locations, each overridable by the DAG run's conf:

- experiments: ``MODELGATE_EXPERIMENTS_DIR``, default ``experiments/`` of this repository;
- router events: ``MODELGATE_EVENTS_ROOT``, else ``ROUTER_EVENTS_ROOT``, else ``<home>/events``;
- outcome and covariate files (relative paths of experiment files): ``MODELGATE_AB_DATA_ROOT``,
  default ``<home>``.

What goes between tasks is small: experiment ids, decisions, MLflow run ids and URLs, and
the approval form's text.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from include.abtest.decision import (
    SHIP,
    approval_outcome,
    concluded_decision,
    conclusion,
    is_concluded,
    promote,
    ship_form,
)
from include.abtest.experiment import InvalidExperiment, load_experiment, load_experiments
from include.routing.client import RouterAdmin

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[2]


def locations(conf: dict[str, Any] | None = None) -> dict[str, str]:
    """Resolve the experiments folder, the events root and the data root.

    Args:
        conf: the DAG run's conf (keys ``experiments_dir``, ``events_root``, ``data_root``).

    Returns:
        ``{"experiments_dir", "events_root", "data_root"}``.
    """
    from include.config import get_settings

    conf = conf or {}
    s = get_settings()
    return {
        "experiments_dir": str(conf.get("experiments_dir") or s.experiments_dir or REPO / "experiments"),
        "events_root": str(conf.get("events_root") or s.resolved_events_root()),
        "data_root": str(conf.get("data_root") or s.ab_data_root or s.home),
    }


def active_experiments(conf: dict[str, Any] | None = None) -> list[str]:
    """Ids of the active experiments (every file is validated; a bad one fails the run).

    Args:
        conf: the DAG run's conf (``experiments_dir``; ``experiments`` restricts to these ids).

    Returns:
        Sorted experiment ids.

    Raises:
        InvalidExperiment: a file is invalid, or a requested id is not an active experiment.
    """
    conf = conf or {}
    ids = [e.id for e in load_experiments(locations(conf)["experiments_dir"])]
    wanted = conf.get("experiments")
    if wanted:
        missing = sorted(set(wanted) - set(ids))
        if missing:
            raise InvalidExperiment(f"not active experiments: {missing}; active: {ids}")
        ids = [i for i in ids if i in wanted]
    log.info("active experiments: %s", ids)
    return ids


def _as_of(conf: dict[str, Any]) -> datetime:
    raw = conf.get("as_of")
    if not raw:
        return datetime.now(UTC)
    try:
        t = datetime.fromisoformat(str(raw))
    except ValueError as e:
        raise InvalidExperiment(f"as_of must be an ISO time, got {raw!r}") from e
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t


def analyse(experiment_id: str, run_name: str, conf: dict[str, Any] | None = None,
            tracking_uri: str | None = None) -> dict[str, Any]:  # fmt: skip
    """Analyse one experiment, log results and report to MLflow, and return the summary.

    A concluded experiment (shipped, or shipping) is not analysed: its summary's decision is
    ``concluded`` (the winner took all traffic, so its split would only show a mismatch).

    Args:
        experiment_id: the experiment.
        run_name: MLflow run name (the Airflow run id).
        conf: the DAG run's conf (locations, ``as_of``).
        tracking_uri: MLflow server.

    Returns:
        ``{"experiment", "decision", "reason", "winner", "winner_version", "run_id",
        "run_url", "report_url", "form"}``; ``form`` is the approval request's subject and
        body when the decision is ``ship``, else None.

    Raises:
        InvalidExperiment: the experiment file is invalid.
        DataError: events or outcomes are missing or lack columns.
    """
    from include.abtest.analysis import analyse_experiment
    from include.abtest.report import log_to_mlflow, render_html

    conf = conf or {}
    loc = locations(conf)
    exp = load_experiment(Path(loc["experiments_dir"]) / f"{experiment_id}.yaml")
    done = conclusion(exp, tracking_uri)
    if is_concluded(done):
        assert done is not None
        d = concluded_decision(done)
        log.info("%s: %s", exp.id, d["reason"])
        return {"experiment": exp.id, **d, "run_id": None, "run_url": None, "report_url": None, "form": None}
    results = analyse_experiment(exp, loc["events_root"], loc["data_root"], as_of=_as_of(conf))
    logged = log_to_mlflow(results, render_html(results), run_name, tracking_uri)
    d = results["decision"]
    form = ship_form(exp, results, logged["report_url"]) if d["decision"] == SHIP else None
    log.info("%s: %s (%s); report %s", exp.id, d["decision"], d["reason"], logged["report_url"])
    return {"experiment": exp.id, **d, **logged, "form": form}


def ship_candidates(summaries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The summaries whose decision is ``ship`` (each becomes one approval request).

    Args:
        summaries: the outputs of :func:`analyse`.

    Returns:
        The ``ship`` summaries, in order.
    """
    return [s for s in summaries if s and s.get("decision") == SHIP]


def promote_winner(summary: dict[str, Any], answer: dict[str, Any] | None, *, actor: str, run_id: str,
                   routes: RouterAdmin, conf: dict[str, Any] | None = None,
                   tracking_uri: str | None = None) -> dict[str, Any]:  # fmt: skip
    """Promote the winner of an approved ``ship`` (registry alias and router routes, audited).

    Args:
        summary: the experiment's summary from :func:`analyse`.
        answer: the approval task's result.
        actor: who approved (falls back to ``actor`` when the answer names nobody).
        run_id: the Airflow run id.
        routes: the router client.
        conf: the DAG run's conf (``experiments_dir``).
        tracking_uri: MLflow server.

    Returns:
        What :func:`include.abtest.decision.promote` returns, plus ``approved_by``.

    Raises:
        PromotionError: the answer is not an approval, or the winner cannot be promoted.
    """
    from include.abtest.decision import PromotionError

    outcome = approval_outcome(answer)
    if outcome["outcome"] != "approved":
        raise PromotionError(
            f"{summary['experiment']}: not approved ({outcome['outcome']}); nothing promoted"
        )
    exp = load_experiment(Path(locations(conf)["experiments_dir"]) / f"{summary['experiment']}.yaml")
    by = outcome["by"] or actor
    reason = f"A/B {exp.id} approved by {by}" + (f": {outcome['reason']}" if outcome["reason"] else "")
    done = promote(exp, summary["winner"], actor=by, run_id=run_id, routes=routes, reason=reason,
                   tracking_uri=tracking_uri)  # fmt: skip
    return {**done, "approved_by": by}


def reconcile_models(summaries: list[dict[str, Any]], conf: dict[str, Any] | None = None, *, actor: str,
                     run_id: str, router: RouterAdmin | None = None,
                     tracking_uri: str | None = None) -> list[dict[str, Any]]:  # fmt: skip
    """Make the ``champion`` alias of each analysed experiment's model match the routes store.

    Args:
        summaries: the outputs of :func:`analyse` (None entries of failed analyses are skipped).
        conf: the DAG run's conf (``experiments_dir``).
        actor: recorded in the audit log.
        run_id: the Airflow run id.
        router: stand-in routes source while the store is empty.
        tracking_uri: MLflow server.

    Returns:
        One result per model (:func:`include.canary.reconcile.reconcile_model`).

    Raises:
        ReconcileUndecidable: a model's alias and routes disagree in a way no rule settles.
    """
    from include.canary.reconcile import reconcile

    folder = Path(locations(conf)["experiments_dir"])
    models = sorted({load_experiment(folder / f"{s['experiment']}.yaml").model for s in summaries if s})
    if not models:
        return []
    return reconcile(actor=actor, run_id=run_id, router=router, models=models, tracking_uri=tracking_uri)


def record_outcome(summary: dict[str, Any], answer: dict[str, Any] | None, promoted: dict[str, Any] | None,
                   *, actor: str, run_id: str, tracking_uri: str | None = None) -> dict[str, Any]:  # fmt: skip
    """Record what became of a ``ship`` proposal: audit record and MLflow run tags.

    Args:
        summary: the experiment's summary from :func:`analyse`.
        answer: the approval task's result (None when it produced none).
        promoted: the promotion's result, None when nothing was promoted.
        actor: recorded when the answer names nobody (timeout).
        run_id: the Airflow run id.
        tracking_uri: MLflow server.

    Returns:
        ``{"experiment", "outcome", "by", "reason", "promoted"}``.
    """
    from mlflow.tracking import MlflowClient

    from include.config import get_settings
    from include.registry.audit import append_audit

    outcome = approval_outcome(answer)
    if outcome["outcome"] == "approved" and promoted is None:
        outcome = {**outcome, "outcome": "approved, promotion failed"}
    record = {"experiment": summary["experiment"], **outcome, "promoted": promoted}
    append_audit(
        outcome["by"] or actor,
        "abtest.ship_decision",
        f"abtest:{summary['experiment']}",
        {"decision": summary["decision"], "winner": summary["winner"], "mlflow_run": summary["run_id"]},
        record,
        run_id,
    )
    client = MlflowClient(tracking_uri or get_settings().tracking_uri)
    client.set_tag(summary["run_id"], "modelgate.abtest.approval", outcome["outcome"])
    client.set_tag(summary["run_id"], "modelgate.abtest.approval_reason", str(outcome["reason"] or ""))
    log.info("%s: ship proposal %s (%s)", summary["experiment"], outcome["outcome"], outcome["reason"])
    return record
