"""The steps of the ``ab_analysis`` DAG, typed: each takes and returns frozen records.

list → analyse (one per experiment) → ship candidates → approve (Airflow's ``ApprovalOperator``) →
promote → record, then reconcile. The records (:mod:`include.xcom`) are what the DAG's tasks hand each
other through XCom: the :class:`Summary` of an analysis (decision, winner, MLflow run and report
links, the approval form), the :class:`Promoted` winner and the :class:`Recorded` outcome. The data
(results, report) stays in the MLflow run; :mod:`include.abtest.pipeline` does the work. The answer
of the approval is Airflow's, passed on as it comes. The :class:`Env` (actor, run id, MLflow server,
router client) is resolved once per task by the DAG and passed to the steps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from include.abtest import pipeline
from include.abtest.decision import SHIP, approval_outcome
from include.canary.steps import Reconciled
from include.xcom import XcomRecord

if TYPE_CHECKING:
    from include.routing.client import RouterAdmin

__all__ = [
    "Approval",
    "Env",
    "Promoted",
    "Reconciled",
    "Recorded",
    "Summary",
    "analyse",
    "approval",
    "list_experiments",
    "promote",
    "reconcile",
    "record",
    "ship_candidates",
    "summaries_of",
]


@dataclass(frozen=True)
class Env:
    """Who acts, in which run, against which MLflow server and router (None: not needed by the step)."""

    actor: str
    run_id: str
    tracking_uri: str | None = None
    router: RouterAdmin | None = None


@dataclass(frozen=True)
class Summary(XcomRecord):
    """One experiment's analysis: the decision, the winner, the MLflow run and the approval form.

    ``run_id`` and the links are None for a concluded experiment (not analysed again); ``form`` (the
    approval's ``subject`` and ``body``) only for a ``ship`` decision.
    """

    experiment: str
    decision: str
    reason: str
    winner: str | None
    winner_version: str | None
    run_id: str | None
    run_url: str | None
    report_url: str | None
    form: dict[str, str] | None
    experiment_id: str | None = None

    @property
    def ships(self) -> bool:
        """Whether the analysis proposes to ship the winner."""
        return self.decision == SHIP


@dataclass(frozen=True)
class Approval(XcomRecord):
    """What the approval task's answer means: ``approved``, ``rejected``, ``timed out``, ``no answer``."""

    outcome: str
    by: str | None
    reason: str | None

    @property
    def approved(self) -> bool:
        """Whether the winner may be promoted."""
        return self.outcome == "approved"


@dataclass(frozen=True)
class Promoted(XcomRecord):
    """The shipped winner: its version now holds ``alias`` and 100 % of the traffic."""

    model: str
    winner: str
    version: str
    alias: str
    alias_moved: bool
    previous_champion: str | None
    resumed: bool
    approved_by: str


@dataclass(frozen=True)
class Recorded(XcomRecord):
    """What became of a ``ship`` proposal (audited and tagged on the MLflow run)."""

    experiment: str
    outcome: str
    by: str | None
    reason: str | None
    promoted: Promoted | None


def list_experiments(conf: dict[str, Any]) -> list[str]:
    """Return the ids of the active experiments (every file validated; a bad one raises InvalidExperiment)."""
    return pipeline.active_experiments(conf)


def analyse(experiment_id: str, conf: dict[str, Any], env: Env) -> Summary:
    """Analyse one experiment, log results and report to MLflow (run named after the Airflow run)."""
    return Summary.from_xcom(pipeline.analyse(experiment_id, env.run_id, conf, env.tracking_uri))


def summaries_of(data: list[Any] | None) -> list[Summary]:
    """Return the summaries of the mapped ``analyse`` XComs (a failed analysis left None: skipped)."""
    return [Summary.from_xcom(d) for d in data or [] if d]


def ship_candidates(summaries: list[Summary]) -> list[Summary]:
    """Return the summaries that propose to ship (each becomes one approval request), in order."""
    return [s for s in summaries if s.ships]


def approval(answer: dict[str, Any] | None) -> Approval:
    """Interpret the approval task's result (``ApprovalOperator``; None when it produced none)."""
    return Approval.from_xcom(approval_outcome(answer))


def promote(summary: Summary, answer: dict[str, Any] | None, conf: dict[str, Any], env: Env) -> Promoted:
    """Promote the winner of an approved ``ship`` (registry alias and router routes, audited).

    Raises:
        PromotionError: the answer is not an approval, or the winner cannot be promoted.
    """
    if env.router is None:
        raise TypeError("promote needs the router client in its Env")
    done = pipeline.promote_winner(summary.to_xcom(), answer, actor=env.actor, run_id=env.run_id,
                                   routes=env.router, conf=conf, tracking_uri=env.tracking_uri)  # fmt: skip
    return Promoted.from_xcom(done)


def record(summary: Summary, answer: dict[str, Any] | None, promoted: Promoted | None, env: Env) -> Recorded:
    """Record what became of a ``ship`` proposal: audit record and MLflow run tags."""
    done = promoted.to_xcom() if promoted else None
    out = pipeline.record_outcome(summary.to_xcom(), answer, done, actor=env.actor, run_id=env.run_id,
                                  tracking_uri=env.tracking_uri)  # fmt: skip
    return Recorded.from_xcom(out)


def reconcile(summaries: list[Summary], conf: dict[str, Any], env: Env) -> list[Reconciled]:
    """Make each analysed experiment's model's ``champion`` alias match the routes store.

    Raises:
        ReconcileUndecidable: a disagreement no rule settles (every decidable model is repaired first).
    """
    out = pipeline.reconcile_models([s.to_xcom() for s in summaries], conf, actor=env.actor, run_id=env.run_id,
                                    router=env.router, tracking_uri=env.tracking_uri)  # fmt: skip
    return [Reconciled.from_xcom(r) for r in out]
