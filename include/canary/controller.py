"""The canary state machine: what each task of ``canary_promotion`` does, idempotently.

State lives in two places that every step reconciles: the **registry** (:mod:`include.canary.state`:
version tags and the lock) and the **router** (:mod:`include.canary.routeplan`: the model's routes).
Every step reads both, does only what is missing, and is safe to re-run or resume:

- routes are written only when they differ from what the step wants;
- a stage already judged ``pass`` (or ``approved``) is never repeated by a resumed run;
- ``set_alias`` is a no-op when the alias already points at the version, so promotion never happens
  twice; a terminal verdict (``promoted``, ``rolled_back``, ``rejected``) ends every later step.

Every end of a canary (rollback, reject, promote) goes through one path, :func:`conclude`: routes to
one version, verdict tags and one audit record (once), lock released, callback notified (once).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from include.canary import events as ev
from include.canary import hooks
from include.canary.conclude import conclude, move_champion, policy_of, promote, reject, rollback
from include.canary.errors import CanaryLocked, CanaryStateError
from include.canary.evidence import evidence_markdown, fit_summary, start_markdown
from include.canary.judge import judge
from include.canary.policy import load_policy
from include.canary.routeplan import apply_routes, canary_weight, desired_routes, guard_trips
from include.canary.state import (
    APPROVE,
    CANARY,
    CHAMPION,
    IN_PROGRESS,
    PREVIOUS_ALIAS,
    PROMOTED,
    REJECTED,
    ROLLED_BACK,
    TAG_BASELINE,
    TAG_LOCK,
    TAG_PREVIOUS,
    TAG_REASON,
    TAG_RUN,
    TAG_STAGE,
    TAG_STARTED,
    TAG_VERDICT,
    TERMINAL,
    Ctx,
    P,
    acquire_lock,
    client,
    now,
    read_lock,
    release_lock,
    set_tags,
    stage_summary,
    version_tags,
)
from include.routing.errors import NotConverged
from modelgate_contracts.tags import REGRESSION_PREFIX

__all__ = [
    "CANARY",
    "CHAMPION",
    "IN_PROGRESS",
    "PREVIOUS_ALIAS",
    "PROMOTED",
    "REJECTED",
    "ROLLED_BACK",
    "TAG_BASELINE",
    "TAG_LOCK",
    "TAG_PREVIOUS",
    "TAG_REASON",
    "TAG_STAGE",
    "TAG_VERDICT",
    "CanaryLocked",
    "Ctx",
    "P",
    "conclude",
    "desired_routes",
    "fail_safe",
    "finish",
    "judge_stage",
    "move_champion",
    "promote",
    "read_lock",
    "reject",
    "release_lock",
    "rollback",
    "route_stage",
    "start",
    "version_tags",
]

log = logging.getLogger(__name__)


def start(model: str, version: str, ctx: Ctx, policy_path: str | None = None) -> dict[str, Any]:
    """Check the candidate, take the lock, record the start; return the run's plan.

    Args:
        model: the model name.
        version: the candidate version.
        ctx: actor, run and router.
        policy_path: explicit policy file (default: lookup by model).

    Returns:
        The plan (JSON data): ``model``, ``version``, ``champion``, ``weights_bp``, ``policy`` and
        ``noop`` (a reason when there is nothing to do, else None), ``evidence_md`` for the approval form.

    Raises:
        CanaryStateError: unknown version, no champion.
        CanaryLocked: another version's canary is in progress.
        InvalidPolicy: the policy is invalid.
    """
    from include.registry.registry import get_alias_version

    policy = load_policy(model, policy_path)
    tags = version_tags(model, version, ctx.tracking_uri)
    plan: dict[str, Any] = {
        "model": model,
        "version": str(version),
        "policy": policy.to_dict(),
        "policy_source": policy.source,
        "weights_bp": policy.weights_bp,
        "noop": None,
    }
    verdict = tags.get(TAG_VERDICT)
    if verdict in TERMINAL:
        plan["noop"] = f"canary of {model} version {version} already ended: {verdict}"
        plan["champion"] = tags.get(TAG_BASELINE)
        return plan
    champion: str | None = tags.get(TAG_BASELINE) if verdict == IN_PROGRESS else None
    if champion is None:  # a resumed run keeps the champion the canary started from
        champion = get_alias_version(model, CHAMPION, ctx.tracking_uri)
    if champion is None:
        raise CanaryStateError(f"{model} has no champion to compare version {version} with")
    plan["champion"] = champion
    if champion == str(version):
        plan["noop"] = f"version {version} is already the champion of {model}"
        return plan
    acquire_lock(model, str(version), ctx)
    started = tags.get(TAG_STARTED) or now().isoformat()
    set_tags(
        model,
        version,
        {TAG_VERDICT: IN_PROGRESS, TAG_RUN: ctx.run_id or "", TAG_BASELINE: champion, TAG_STARTED: started},
        ctx,
    )
    all_tags = client(ctx.tracking_uri).get_model_version(model, str(version)).tags or {}
    reg = {k: v for k, v in all_tags.items() if k.startswith(REGRESSION_PREFIX)}
    plan["evidence_md"] = start_markdown(
        model, str(version), champion, policy.stages, policy.bake_seconds, reg
    )
    return plan


def _approval(payload: Any) -> tuple[bool | None, str]:
    """Read an HITL response: (approved?, who); (None, '') when there was no response."""
    if not payload:
        return None, ""
    chosen = payload.get("chosen_options") or []
    who = payload.get("responded_by_user") or {}
    name = (who.get("name") or who.get("id") or "unknown") if isinstance(who, dict) else str(who)
    return (APPROVE in chosen), str(name)


def _resolve_marginal(plan: dict[str, Any], i: int, approval: Any, ctx: Ctx) -> bool:
    """Settle stage ``i``'s marginal judgement with the human answer; True when the canary goes on."""
    model, version = plan["model"], plan["version"]
    summary = stage_summary(version_tags(model, version, ctx.tracking_uri), i)
    if summary is None:
        raise CanaryStateError(f"stage {i} of {model} version {version} has no judgement to continue from")
    if summary["decision"] in ("pass", "approved"):
        return True
    if summary["decision"] != "marginal":
        return False
    approved, who = _approval(approval)
    if approved:
        summary.update(decision="approved", approved_by=who)
        set_tags(model, version, {f"{P}stage_{i}": summary}, ctx)
        return True
    reason = (
        f"stage {i} was marginal (score {summary.get('score')}) and {who or 'nobody'} rejected it"
        if approved is False
        else f"stage {i} was marginal (score {summary.get('score')}) and no approval was given"
    )
    rollback(plan, reason, ctx, stage=i)
    return False


def route_stage(
    plan: dict[str, Any], i: int, ctx: Ctx, start_approval: Any = None, prev_approval: Any = None
) -> dict[str, Any] | None:
    """Move traffic to stage ``i`` (1-based) and wait until every replica serves it; None when nothing to do.

    The bake window starts only after every router replica reports the change's generation; a
    replica that does not within the policy's ``converge_seconds`` rolls the canary back.

    Args:
        plan: from :func:`start`.
        i: the stage number.
        ctx: actor, run and router.
        start_approval: the HITL response of the approval before traffic moves (stage 1 only).
        prev_approval: the HITL response to a marginal judgement of stage ``i - 1``.

    Returns:
        ``stage``, ``weight_bp``, ``window_start``, ``window_end``, ``judge_at`` (ISO times), or None.
    """
    model, version = plan["model"], plan["version"]
    policy = policy_of(plan)
    if plan["noop"] or i > len(plan["weights_bp"]):
        return None
    tags = version_tags(model, version, ctx.tracking_uri)
    if tags.get(TAG_VERDICT) != IN_PROGRESS:
        return None
    if i == 1 and policy.require_approval:
        approved, who = _approval(start_approval)
        if not approved and stage_summary(tags, 1) is None:
            reject(plan, f"not approved before traffic moved ({who or 'no answer'})", ctx)
            return None
    if i > 1 and not _resolve_marginal(plan, i - 1, prev_approval, ctx):
        return None
    own = stage_summary(version_tags(model, version, ctx.tracking_uri), i)
    if own and own["decision"] in ("pass", "approved"):
        log.info("stage %d of %s v%s already passed: resumed run skips it", i, model, version)
        return None
    started = datetime.fromisoformat(tags[TAG_STARTED]).timestamp()
    trips = guard_trips(model, version, started, ctx)
    if trips:
        rollback(plan, f"router guard cut the canary: {trips[-1].get('reason')}", ctx, stage=i, guard=trips)
        return None
    weight = plan["weights_bp"][i - 1]
    want = desired_routes(
        ctx.router.get_routes(model), model, plan["champion"], version, weight, policy.guard
    )
    try:
        changed = apply_routes(model, want, ctx, policy.converge_seconds)
    except NotConverged as e:
        rollback(plan, f"stage {i}: {e.message}", ctx, stage=i)
        return None
    hooks.reached(f"after_routes:{i}")
    set_tags(model, version, {TAG_STAGE: str(i)}, ctx)
    t0 = now()
    end = t0 + timedelta(seconds=policy.bake_seconds)
    log.info(
        "stage %d: %s v%s at %d bp (routes %s)", i, model, version, weight, "set" if changed else "unchanged"
    )
    return {
        "stage": i,
        "weight_bp": weight,
        "window_start": t0.isoformat(),
        "window_end": end.isoformat(),
        "judge_at": (end + timedelta(seconds=policy.events_grace_seconds)).isoformat(),
    }


def judge_stage(
    plan: dict[str, Any], routed: dict[str, Any], ctx: Ctx, events_root: str | None = None
) -> dict[str, Any]:
    """Judge stage ``routed["stage"]`` on the router's events of its window; roll back on failure.

    At 100 % the champion gets no traffic in the window, so its baseline is then taken from the whole
    canary (from ``started_at``); the result says which baseline window was used.

    Args:
        plan: from :func:`start`.
        routed: from :func:`route_stage`.
        ctx: actor, run and router.
        events_root: the router's events root (default :func:`include.canary.events.events_root`).

    Returns:
        The judge's result plus ``stage``, ``weight_bp``, ``window``, ``baseline_window`` and
        ``evidence_md`` (markdown for the approval form).
    """
    model, version, champion = plan["model"], plan["version"], plan["champion"]
    policy = policy_of(plan)
    i = int(routed["stage"])
    tags = version_tags(model, version, ctx.tracking_uri)
    if tags.get(TAG_VERDICT) != IN_PROGRESS:
        return {"decision": "ended", "stage": i, "verdict": tags.get(TAG_VERDICT)}
    root = events_root or ev.events_root()
    start, end = datetime.fromisoformat(routed["window_start"]), datetime.fromisoformat(routed["window_end"])
    table = ev.load_window(root, model, start, end)
    canary = ev.samples(table, CANARY, version)
    base_table = table
    baseline = ev.samples(table, CHAMPION, champion)
    base_window = [start.isoformat(), end.isoformat()]
    need = min(m.min_samples for m in policy.judge.metrics)
    if baseline["error_rate"].size < need:
        since = datetime.fromisoformat(tags[TAG_STARTED])
        if since < start:
            base_table = ev.load_window(root, model, since, end)
            baseline = ev.samples(base_table, CHAMPION, champion)
            base_window = [since.isoformat(), end.isoformat()]
    trips = guard_trips(model, version, datetime.fromisoformat(tags[TAG_STARTED]).timestamp(), ctx)
    weight = canary_weight(ctx.router.get_routes(model), version)
    if not trips and weight != routed["weight_bp"]:
        trips = [
            {
                "model": model,
                "variant": CANARY,
                "version": version,
                "reason": f"canary weight is {weight} bp, expected {routed['weight_bp']} (changed outside the DAG)",
            }
        ]
    result = judge(canary, baseline, policy.judge, trips)
    result.update(
        stage=i,
        weight_bp=routed["weight_bp"],
        window=[start.isoformat(), end.isoformat()],
        baseline_window=base_window,
        # requests without consent are not judged (docs/privacy.md); the evidence says how many
        excluded_without_consent={
            "canary": ev.excluded_without_consent(table, CANARY, version),
            "baseline": ev.excluded_without_consent(base_table, CHAMPION, champion),
        },
    )
    summary = {
        "stage": i,
        "percent": routed["weight_bp"] / 100,
        "decision": result["decision"],
        "score": result["score"],
        "metrics": {m["name"]: m["classification"] for m in result["metrics"]},
        "n": {"canary": int(canary["error_rate"].size), "baseline": int(baseline["error_rate"].size)},
        "window": result["window"],
        "excluded_without_consent": result["excluded_without_consent"],
        "reasons": [r[:300] for r in result["reasons"][:4]],
    }
    set_tags(model, version, {f"{P}stage_{i}": fit_summary(summary)}, ctx)
    result["evidence_md"] = evidence_markdown(plan, result)
    if result["decision"] == "rollback":
        rollback(plan, "; ".join(result["reasons"]), ctx, stage=i, guard=trips)
    return result


def finish(plan: dict[str, Any], ctx: Ctx, last_approval: Any = None) -> dict[str, Any]:
    """After the last stage: promote when it passed (or was approved), else report the end state.

    Args:
        plan: the plan.
        ctx: actor, run and router.
        last_approval: the HITL response to a marginal judgement of the last stage.

    Returns:
        ``{"verdict", "reason", "champion"}``.
    """
    from include.registry.registry import get_alias_version

    model, version = plan["model"], plan["version"]
    if plan["noop"]:
        return {"verdict": "noop", "reason": plan["noop"], "champion": plan.get("champion")}
    tags = version_tags(model, version, ctx.tracking_uri)
    verdict = tags.get(TAG_VERDICT)
    n = len(plan["weights_bp"])
    if verdict == IN_PROGRESS:
        if stage_summary(tags, n) is None:
            raise CanaryStateError(
                f"canary of {model} v{version} is in progress but stage {n} was never judged"
            )
        if _resolve_marginal(plan, n, last_approval, ctx):
            return promote(plan, ctx)
    elif verdict == PROMOTED:
        return promote(plan, ctx)  # reconcile after a crash: every step is a no-op when done
    tags = version_tags(model, version, ctx.tracking_uri)
    return {
        "verdict": tags.get(TAG_VERDICT),
        "reason": tags.get(TAG_REASON),
        "champion": get_alias_version(model, CHAMPION, ctx.tracking_uri),
    }


def fail_safe(plan: dict[str, Any] | None, failed_tasks: list[str], ctx: Ctx) -> dict[str, Any] | None:
    """After a task failed for good: roll an in-progress canary back so traffic is never left half-way.

    Args:
        plan: the plan (None when planning itself failed: nothing to undo).
        failed_tasks: ids of the failed tasks.
        ctx: actor, run and router.

    Returns:
        The rollback record, or None when nothing was in progress.
    """
    if not plan or plan.get("noop"):
        return None
    if version_tags(plan["model"], plan["version"], ctx.tracking_uri).get(TAG_VERDICT) != IN_PROGRESS:
        return None
    return rollback(plan, f"canary run failed in {', '.join(sorted(failed_tasks))}", ctx)
