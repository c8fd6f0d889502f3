"""The end of a canary: rollback, reject and promote, all through one path (:func:`conclude`).

Routes first (traffic is safe at once), then the registry: verdict tags and one audit record when the
verdict is not recorded yet, the lock released, the callback notified when it was not. Every part is
skipped when already done, so a re-run after a crash completes an ending without repeating anything.

Promotion is a saga whose every prefix is safe (docs/canary.md): (1) routes: the candidate alone, in
the routes store; (2) every router replica serves that generation; (3) aliases ``champion`` and
``previous_champion``; (4) verdict tags, audit record, lock, callback. A crash after (1) leaves the
store serving the candidate with the alias behind: a re-run completes (2)-(4), and the reconcile step
(:mod:`include.canary.reconcile`) repairs the alias to match the store within one cycle. The alias
never moves before every replica serves the candidate. Named fault points
(:mod:`include.canary.hooks`) sit between the steps.
"""

from __future__ import annotations

import logging
from typing import Any

from include.canary import hooks
from include.canary import notify as nt
from include.canary.policy import CanaryPolicy
from include.canary.routeplan import apply_routes, desired_routes
from include.canary.state import (
    CHAMPION,
    IN_PROGRESS,
    MAX_TAG_CHARS,
    PREVIOUS_ALIAS,
    PROMOTED,
    REJECTED,
    ROLLED_BACK,
    TAG_NOTIFIED,
    TAG_PREVIOUS,
    TAG_REASON,
    TAG_VERDICT,
    Ctx,
    now,
    release_lock,
    set_tags,
    version_tags,
)
from include.routing.errors import NotConverged
from modelgate_contracts.uris import version_uri

log = logging.getLogger(__name__)


def policy_of(plan: dict[str, Any]) -> CanaryPolicy:
    """Return the canary policy a plan carries.

    Args:
        plan: the plan of :func:`include.canary.controller.start`.

    Returns:
        The policy.
    """
    return CanaryPolicy.from_dict(plan["policy"], source=plan.get("policy_source", "<plan>"))


def conclude(
    plan: dict[str, Any],
    ctx: Ctx,
    verdict: str,
    reason: str,
    serve: str,
    action: str,
    before: Any,
    record: dict[str, Any],
    callback: str | None = None,
    extra_tags: dict[str, str] | None = None,
) -> None:
    """End a canary: the one path of rollback, reject and promote, each part done once.

    Routes first (traffic is safe at once), then the registry: the verdict tags and one audit record
    when the verdict is not recorded yet, the lock released, the callback notified when it was not.
    A re-run after a crash completes what is missing without repeating anything.

    Args:
        plan: the plan.
        ctx: actor, run and router.
        verdict: ``rolled_back``, ``rejected`` or ``promoted``.
        reason: stored in ``modelgate.canary.reason``.
        serve: the version that gets all traffic.
        action: the audit action (``canary.rollback``, ...).
        before: the audit record's "before".
        record: the audit record's "after" (and what the callback receives).
        callback: ``module:function`` to notify, or None.
        extra_tags: more version tags set with the verdict.
    """
    from include.registry.audit import append_audit

    model, version = plan["model"], plan["version"]
    want = desired_routes(ctx.router.get_routes(model), model, serve, None, 0, None)
    try:
        apply_routes(model, want, ctx, policy_of(plan).converge_seconds)
    except NotConverged as e:
        if verdict == PROMOTED:
            raise  # promotion never completes before every replica serves the new champion
        # a rollback is committed in the store; the lagging replica catches up when it can
        log.error("canary of %s v%s %s, but: %s", model, version, verdict, e.message)
        record["not_converged"] = e.lagging
    tags = version_tags(model, version, ctx.tracking_uri)
    if tags.get(TAG_VERDICT) != verdict:
        set_tags(model, version, {TAG_VERDICT: verdict, TAG_REASON: reason, **(extra_tags or {})}, ctx)
        append_audit(ctx.actor, action, version_uri(model, version), before, record, ctx.run_id)
    hooks.reached(f"conclude:{verdict}:recorded")
    release_lock(model, version, ctx)
    if callback is not None and tags.get(TAG_NOTIFIED) != verdict:
        err = nt.notify(callback, record)
        set_tags(model, version, {TAG_NOTIFIED: verdict if err is None else f"failed: {err}"[:500]}, ctx)


def rollback(
    plan: dict[str, Any],
    reason: str,
    ctx: Ctx,
    stage: int | None = None,
    guard: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Send all traffic back to the champion, tag the verdict, audit, release the lock, notify.

    Args:
        plan: the plan.
        reason: why, in words (stored in ``modelgate.canary.reason``).
        ctx: actor, run and router.
        stage: the stage that failed.
        guard: guard events behind the rollback.

    Returns:
        The rollback record.
    """
    model, version, champion = plan["model"], plan["version"], plan["champion"]
    record = {
        "event": "rollback",
        "model": model,
        "version": version,
        "champion": champion,
        "stage": stage,
        "reason": reason,
        "guard_events": guard or [],
        "run_id": ctx.run_id,
        "actor": ctx.actor,
        "ts": now().isoformat(),
    }
    before = {"routes": ctx.router.get_routes(model)}
    callback = policy_of(plan).on_rollback
    conclude(
        plan, ctx, ROLLED_BACK, reason[:MAX_TAG_CHARS], champion, "canary.rollback", before, record, callback
    )
    log.warning("canary of %s v%s rolled back: %s", model, version, reason)
    return record


def reject(plan: dict[str, Any], reason: str, ctx: Ctx) -> None:
    """End a canary that never took traffic (approval before traffic refused).

    Args:
        plan: the plan.
        reason: why.
        ctx: actor, run and router.
    """
    conclude(plan, ctx, REJECTED, reason, plan["champion"], "canary.reject", None, {"reason": reason})


def move_champion(
    model: str, new: str, old: str | None, ctx: Ctx, reason: str, demoted_reason: str | None = None
) -> bool:
    """Move alias ``champion`` to ``new`` and keep ``old`` as ``previous_champion`` (each audited).

    Used by promotion and by the champion rollback CLI (:mod:`include.canary.rollback`).

    Args:
        model: the model name.
        new: the version that becomes champion.
        old: the champion it replaces (None: none).
        ctx: actor and run.
        reason: recorded with the alias change.
        demoted_reason: recorded with the ``previous_champion`` change (default: "replaced by <new>").

    Returns:
        Whether the champion alias moved (False when it already pointed at ``new``).
    """
    from include.registry.registry import set_alias

    moved = set_alias(model, CHAMPION, new, actor=ctx.actor, run_id=ctx.run_id, reason=reason,
                      tracking_uri=ctx.tracking_uri)
    if old is not None and old != new:
        why = demoted_reason or f"replaced by {new}"
        set_alias(model, PREVIOUS_ALIAS, old, actor=ctx.actor, run_id=ctx.run_id, reason=why,
                  tracking_uri=ctx.tracking_uri)
    return moved


def promote(plan: dict[str, Any], ctx: Ctx) -> dict[str, Any]:
    """Promote the canary: routes 100 %, every replica serving, then aliases, then verdict and audit.

    Each step is idempotent, so a re-run after a crash between any two steps completes the promotion
    once: routes are written only when they differ, aliases move only when they point elsewhere, the
    verdict and its audit record are written only when not recorded yet.

    Args:
        plan: the plan.
        ctx: actor, run and router.

    Returns:
        ``{"verdict": "promoted", "champion", "previous_champion"}``.

    Raises:
        NotConverged: a replica did not serve the candidate in time; no alias moved (re-run to finish).
        CanaryStateError: the canary ended otherwise (rolled back or rejected) before this promotion.
    """
    from include.canary.errors import CanaryStateError

    model, version, old = plan["model"], plan["version"], plan["champion"]
    verdict = version_tags(model, version, ctx.tracking_uri).get(TAG_VERDICT)
    if verdict not in (IN_PROGRESS, PROMOTED):
        raise CanaryStateError(f"canary of {model} v{version} ended {verdict}: it cannot be promoted")
    want = desired_routes(ctx.router.get_routes(model), model, version, None, 0, None)
    apply_routes(model, want, ctx, policy_of(plan).converge_seconds)
    hooks.reached("promote:routes_converged")
    moved = move_champion(model, version, old, ctx, f"canary passed {len(plan['weights_bp'])} stages")
    hooks.reached("promote:aliases_moved")
    record = {
        "event": "promote",
        "model": model,
        "version": version,
        "previous_champion": old,
        "run_id": ctx.run_id,
        "actor": ctx.actor,
        "ts": now().isoformat(),
    }
    conclude(
        plan,
        ctx,
        PROMOTED,
        "passed every stage",
        version,
        "canary.promote",
        {"champion": old},
        record,
        policy_of(plan).on_promote,
        {TAG_PREVIOUS: old},
    )
    log.info("canary of %s v%s promoted (alias moved: %s)", model, version, moved)
    return {"verdict": PROMOTED, "champion": version, "previous_champion": old}
