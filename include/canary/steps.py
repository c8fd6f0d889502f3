"""The steps of the ``canary_promotion`` DAG, typed: each takes and returns frozen records.

prepare → route (per stage) → judge (per stage) → finish → reconcile → finalize. The records
(:mod:`include.xcom`) are what the DAG's tasks hand each other through XCom: the :class:`Plan` (model,
version, champion, policy, stage weights), a :class:`Routed` stage window, a :class:`Judged` stage, the
:class:`Outcome` and one :class:`Reconciled` per model. The state itself lives in the registry's
version tags and the routes store (:mod:`include.canary.controller` does the work); the answers of the
human approvals are Airflow's HITL responses, passed on as they come. Every step takes the
:class:`~include.canary.state.Ctx` (router admin client, actor, run id, MLflow tracking URI) that the DAG
resolves once per task.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from include.canary import controller
from include.canary.errors import CanaryStateError
from include.canary.reconcile import reconcile as reconcile_store
from include.canary.state import Ctx
from include.errors import CONF_ACTOR_REFUSED
from include.xcom import XcomRecord

__all__ = [
    "Ctx",
    "Judged",
    "Outcome",
    "Plan",
    "Reconciled",
    "Routed",
    "fail_safe",
    "failure",
    "finish",
    "judge",
    "needs_approval",
    "plan_or_none",
    "prepare",
    "reconcile",
    "reconcile_models",
    "route",
    "unsettled",
]


@dataclass(frozen=True)
class Plan(XcomRecord):
    """What the canary run does: the candidate, the champion it is compared with, the policy, the weights.

    ``noop`` is the reason when there is nothing to do (already ended, already champion), else None;
    ``evidence_md`` is the regression evidence shown by the approval before traffic moves.
    """

    model: str
    version: str
    policy: dict[str, Any]
    policy_source: str
    weights_bp: list[int]
    noop: str | None
    champion: str | None
    actor: str
    evidence_md: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """Return the plan dict the controller functions read."""
        return self.to_xcom()


@dataclass(frozen=True)
class Routed(XcomRecord):
    """A stage whose routes every replica serves: its weight and bake window (ISO times)."""

    stage: int
    weight_bp: int
    window_start: str
    window_end: str
    judge_at: str


@dataclass(frozen=True)
class Judged(XcomRecord):
    """The judge's result on one stage's window (``decision`` ``ended`` when the canary ended before)."""

    decision: str
    stage: int
    verdict: str | None = None
    score: float | None = None
    reasons: list[str] = field(default_factory=list)
    critical_failures: list[str] = field(default_factory=list)
    no_data: list[str] = field(default_factory=list)
    metrics: list[dict[str, Any]] = field(default_factory=list)
    guard_events: list[dict[str, Any]] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    weight_bp: int | None = None
    window: list[str] = field(default_factory=list)
    baseline_window: list[str] = field(default_factory=list)
    excluded_without_consent: dict[str, Any] = field(default_factory=dict)
    evidence_md: str = ""

    @property
    def marginal(self) -> bool:
        """Whether a human decides whether the canary goes on."""
        return self.decision == "marginal"


@dataclass(frozen=True)
class Outcome(XcomRecord):
    """How the canary ended: verdict (``promoted``, ``rolled_back``, ``rejected``, ``noop``), why, champion."""

    verdict: str | None
    champion: str | None
    reason: str | None = None
    previous_champion: str | None = None


@dataclass(frozen=True)
class Reconciled(XcomRecord):
    """One model's champion alias against the routes store (``alias``: the alias before)."""

    model: str
    status: str
    served: str | None
    alias: str | None
    reason: str | None


def prepare(conf: dict[str, Any], asset_extras: list[dict[str, Any]], ctx: Ctx) -> Plan:
    """Read the candidate from conf (else the last regression Asset event), take the lock; return the plan.

    Args:
        conf: the run's conf (``model_name``, ``version``, optional ``policy``: a policy name).
        asset_extras: the extras of the triggering ``modelgate_regression_passed`` events, oldest first.
        ctx: actor, run and router.

    Raises:
        CanaryStateError: a conf ``actor``, no candidate, unknown version, no champion.
        CanaryLocked: another version's canary is in progress.
        InvalidPolicy: the policy is invalid or unknown.
    """
    from include.canary.policy import policy_by_name

    model, version = conf.get("model_name"), conf.get("version")
    if not model:
        extra = asset_extras[-1] if asset_extras else {}
        model, version = extra.get("model_name"), extra.get("version")
    if "actor" in conf:
        raise CanaryStateError(CONF_ACTOR_REFUSED)
    if not model or not version:
        raise CanaryStateError("conf needs model_name and version (or a regression Asset event)")
    policy = str(policy_by_name(conf["policy"])) if conf.get("policy") is not None else None
    plan = controller.start(str(model), str(version), ctx, policy)
    return Plan.from_xcom({**plan, "actor": ctx.actor})


def plan_or_none(data: Any) -> Plan | None:
    """Return the plan from the ``prepare`` XCom, None when ``prepare`` returned nothing (it failed)."""
    return Plan.from_xcom(data) if data else None


def needs_approval(plan: Plan) -> bool:
    """Whether a human approves before any traffic moves."""
    return bool(plan.policy.get("require_approval")) and not plan.noop


def route(
    plan: Plan, stage: int, ctx: Ctx, start_approval: Any = None, prev_approval: Any = None
) -> Routed | None:
    """Move traffic to ``stage`` once every replica serves it (:func:`controller.route_stage`); None: nothing to do."""
    routed = controller.route_stage(plan.as_dict(), stage, ctx, start_approval, prev_approval)
    return None if routed is None else Routed.from_xcom(routed)


def judge(plan: Plan, routed: Routed, ctx: Ctx) -> Judged:
    """Judge the stage on the router's events of its window; roll back on failure (:func:`controller.judge_stage`)."""
    return Judged.from_xcom(controller.judge_stage(plan.as_dict(), routed.to_xcom(), ctx))


def finish(plan: Plan, ctx: Ctx, last_approval: Any = None) -> Outcome:
    """After the last stage: promote when it passed (or was approved), else report the end state."""
    return Outcome.from_xcom(controller.finish(plan.as_dict(), ctx, last_approval))


def unsettled(plan: Plan, ctx: Ctx) -> bool:
    """Whether the canary is still in progress (finalize rolls it back; nothing to reconcile yet)."""
    tags = controller.version_tags(plan.model, plan.version, ctx.tracking_uri)
    return not plan.noop and tags.get(controller.TAG_VERDICT) == controller.IN_PROGRESS


def reconcile_models(ctx: Ctx, models: list[str] | None = None) -> list[Reconciled]:
    """Make each model's ``champion`` alias match the routes store (every model of the store by default).

    Raises:
        ReconcileUndecidable: a disagreement no rule settles (every decidable model is repaired first).
    """
    results = reconcile_store(actor=ctx.actor, run_id=ctx.run_id, router=ctx.router, models=models,
                              tracking_uri=ctx.tracking_uri)
    return [Reconciled.from_xcom(r) for r in results]


def reconcile(plan: Plan, ctx: Ctx) -> list[Reconciled]:
    """Make the plan's model's ``champion`` alias match the routes store."""
    return reconcile_models(ctx, [plan.model])


def fail_safe(plan: Plan | None, failed_tasks: list[str], ctx: Ctx) -> None:
    """After a task failed for good: roll an in-progress canary back so traffic is never left half-way."""
    controller.fail_safe(plan.as_dict() if plan else None, failed_tasks, ctx)


def failure(outcome: Outcome | None) -> str | None:
    """Return the message a rolled-back canary's run fails with (None: the run succeeds)."""
    if outcome is not None and outcome.verdict == controller.ROLLED_BACK:
        return f"canary rolled back: {outcome.reason}"
    return None
