"""The canary state machine: what each task of ``canary_promotion`` does, idempotently.

State lives in two places that every step reconciles: the **registry** (version tags
``modelgate.canary.*`` and the lock tag on the registered model) and the **router** (the model's
routes). Every step reads both, does only what is missing, and is safe to re-run or resume:

- routes are written only when they differ from what the step wants;
- a stage already judged ``pass`` (or ``approved``) is never repeated by a resumed run;
- ``set_alias`` is a no-op when the alias already points at the version, so promotion never happens
  twice; a terminal verdict (``promoted``, ``rolled_back``, ``rejected``) ends every later step.

Version tags (all under ``modelgate.canary.``): ``verdict`` (in_progress / promoted / rolled_back /
rejected), ``reason``, ``run_id``, ``baseline_version`` (champion when the canary started),
``started_at``, ``stage`` (last stage routed), ``stage_<i>`` (JSON summary of stage i's judgement),
``previous_champion`` (after promotion), ``notified``. Registered-model tag ``modelgate.canary.lock``
holds ``{"version", "run_id", "since"}`` while a canary runs: a canary of another version is refused.
"""

from __future__ import annotations

import json
import logging
import os
import signal
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from include.canary import events as ev
from include.canary import notify as nt
from include.canary.errors import CanaryLocked, CanaryStateError
from include.canary.judge import judge
from include.canary.policy import CanaryPolicy, load_policy
from include.routing.client import RouterAdmin

log = logging.getLogger(__name__)

P = "modelgate.canary."
TAG_VERDICT, TAG_REASON, TAG_RUN = P + "verdict", P + "reason", P + "run_id"
TAG_BASELINE, TAG_STARTED, TAG_STAGE = P + "baseline_version", P + "started_at", P + "stage"
TAG_PREVIOUS, TAG_NOTIFIED, TAG_LOCK = P + "previous_champion", P + "notified", P + "lock"
IN_PROGRESS, PROMOTED, ROLLED_BACK, REJECTED = "in_progress", "promoted", "rolled_back", "rejected"
TERMINAL = (PROMOTED, ROLLED_BACK, REJECTED)
CHAMPION, CANARY = "champion", "canary"
APPROVE = "Approve"
PREVIOUS_ALIAS = "previous_champion"
MAX_TAG_CHARS = 4500


@dataclass
class Ctx:
    """Who acts and through what.

    Attributes:
        router: the router admin API (``RouterHook`` in DAGs, ``RouterClient`` elsewhere).
        actor: recorded in tags and the audit log.
        run_id: the Airflow run id.
    """

    router: RouterAdmin
    actor: str
    run_id: str | None = None


def _client() -> Any:
    from include.registry.registry import get_client

    return get_client()


def _now() -> datetime:
    return datetime.now(UTC)


def version_tags(model: str, version: str) -> dict[str, str]:
    """Return a version's ``modelgate.canary.*`` tags.

    Args:
        model: the model name.
        version: the version.

    Returns:
        Tag name to value.

    Raises:
        CanaryStateError: the version does not exist.
    """
    from mlflow.exceptions import MlflowException

    try:
        mv = _client().get_model_version(model, str(version))
    except MlflowException as e:
        raise CanaryStateError(f"models:/{model}/{version} does not exist") from e
    return {k: v for k, v in (mv.tags or {}).items() if k.startswith(P)}


def _set_tags(model: str, version: str, tags: dict[str, Any], ctx: Ctx) -> None:
    """Set only the tags whose value changes (one audit record for the change, none when nothing does)."""
    from include.registry.registry import set_version_tags

    current = version_tags(model, version)
    changed = {
        k: (v if isinstance(v, str) else json.dumps(v, sort_keys=True))
        for k, v in tags.items()
        if current.get(k) != (v if isinstance(v, str) else json.dumps(v, sort_keys=True))
    }
    if changed:
        set_version_tags(model, version, changed, actor=ctx.actor, run_id=ctx.run_id)


def _stage_summary(tags: dict[str, str], i: int) -> dict[str, Any] | None:
    raw = tags.get(f"{P}stage_{i}")
    return json.loads(raw) if raw else None


def read_lock(model: str) -> dict[str, Any] | None:
    """Return the canary lock of a model, or None.

    Args:
        model: the model name.

    Returns:
        ``{"version", "run_id", "since"}`` or None.
    """
    raw = (_client().get_registered_model(model).tags or {}).get(TAG_LOCK)
    return json.loads(raw) if raw else None


def acquire_lock(model: str, version: str, ctx: Ctx) -> dict[str, Any]:
    """Take the model's canary lock for ``version`` (a re-run of the same version takes it over).

    Args:
        model: the model name.
        version: the candidate version.
        ctx: actor and run.

    Returns:
        The lock.

    Raises:
        CanaryLocked: a canary of another version holds it.
    """
    from include.registry.audit import append_audit

    held = read_lock(model)
    if held and held["version"] != str(version):
        raise CanaryLocked(
            f"a canary of {model} version {held['version']} is in progress (run {held['run_id']}, since "
            f"{held['since']}); concurrent canaries of one model are refused. Wait for it, or abort it with "
            f"`python -m include.canary.rollback --model {model} --abort`"
        )
    if held and held["run_id"] == ctx.run_id:
        return held
    lock = {"version": str(version), "run_id": ctx.run_id, "since": _now().isoformat()}
    client = _client()
    client.set_registered_model_tag(model, TAG_LOCK, json.dumps(lock))
    back = read_lock(model)
    if back != lock:  # another run wrote after us: it wins, we refuse
        raise CanaryLocked(f"lost the canary lock of {model} to {back}")
    append_audit(ctx.actor, "canary.lock", f"models:/{model}", held, lock, ctx.run_id)
    return lock


def release_lock(model: str, version: str, ctx: Ctx) -> None:
    """Drop the lock when this version holds it.

    Args:
        model: the model name.
        version: the version whose canary ended.
        ctx: actor and run.
    """
    from include.registry.audit import append_audit

    held = read_lock(model)
    if held and held["version"] == str(version):
        _client().delete_registered_model_tag(model, TAG_LOCK)
        append_audit(ctx.actor, "canary.unlock", f"models:/{model}", held, None, ctx.run_id)


# ---------------------------------------------------------------------------------------- routes


def _model_uri(model: str, version: str) -> str:
    return f"models:/{model}/{version}"


def desired_routes(
    current: dict[str, Any] | None, model: str, champion: str, canary: str | None, canary_bp: int, guard: Any
) -> dict[str, Any]:
    """Return routes with the champion and (when ``canary`` is set) the canary at ``canary_bp``.

    Salt, shadow and other settings of the current routes are kept; ``guard`` replaces the guard
    when given.

    Args:
        current: the router's current routes of the model (None: not served yet).
        model: the model name.
        champion: the champion version.
        canary: the canary version, or None for champion-only routes.
        canary_bp: canary weight in basis points.
        guard: guard settings, or None to keep the current ones.

    Returns:
        The routes document of the model.
    """
    routes = {k: v for k, v in (current or {}).items() if k not in ("variants", "champion")}
    variants = [{"name": CHAMPION, "uri": _model_uri(model, champion), "weight_bp": 10000 - canary_bp}]
    if canary is not None:
        variants.append({"name": CANARY, "uri": _model_uri(model, canary), "weight_bp": canary_bp})
    routes["variants"] = variants
    routes["champion"] = CHAMPION
    if guard is not None:
        routes["guard"] = guard
    return routes


def _same_routes(a: dict[str, Any] | None, b: dict[str, Any]) -> bool:
    if a is None:
        return False

    def key(r: dict[str, Any]) -> Any:
        vs = sorted((v["name"], v["uri"], int(v["weight_bp"])) for v in r.get("variants", []))
        return vs, r.get("champion", r.get("variants", [{}])[0].get("name"))

    if key(a) != key(b):
        return False
    return all(a.get(k) == v for k, v in b.items() if k == "guard") if "guard" in b else True


def _apply_routes(model: str, want: dict[str, Any], ctx: Ctx) -> bool:
    current = ctx.router.get_routes(model)
    if _same_routes(current, want):
        return False
    ctx.router.put_routes(model, want, ctx.run_id)
    return True


def _canary_weight(routes: dict[str, Any] | None, version: str) -> int | None:
    for v in (routes or {}).get("variants", []):
        if v["name"] == CANARY and v["uri"].endswith(f"/{version}"):
            return int(v["weight_bp"])
    return None


def _guard_trips(model: str, version: str, since: float, ctx: Ctx) -> list[dict[str, Any]]:
    return [
        e
        for e in ctx.router.guard_events()
        if e.get("model") == model
        and e.get("variant") == CANARY
        and str(e.get("version")) == str(version)
        and float(e.get("ts", 0)) >= since
    ]


def _crash_point(name: str) -> None:
    """Kill this process at a named point when ``MODELGATE_CANARY_CRASH_AT`` names it (kill-and-rerun tests)."""
    if os.environ.get("MODELGATE_CANARY_CRASH_AT") == name:
        log.error("MODELGATE_CANARY_CRASH_AT=%s: killing the process", name)
        os.kill(os.getpid(), signal.SIGKILL)


# ------------------------------------------------------------------------------------------ plan


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
    tags = version_tags(model, version)
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
        champion = get_alias_version(model, "champion")
    if champion is None:
        raise CanaryStateError(f"{model} has no champion to compare version {version} with")
    plan["champion"] = champion
    if champion == str(version):
        plan["noop"] = f"version {version} is already the champion of {model}"
        return plan
    acquire_lock(model, str(version), ctx)
    started = tags.get(TAG_STARTED) or _now().isoformat()
    _set_tags(
        model,
        version,
        {TAG_VERDICT: IN_PROGRESS, TAG_RUN: ctx.run_id or "", TAG_BASELINE: champion, TAG_STARTED: started},
        ctx,
    )
    reg = {
        k: v
        for k, v in (_client().get_model_version(model, str(version)).tags or {}).items()
        if k.startswith("modelgate.regression.")
    }
    plan["evidence_md"] = (
        f"**{model}** version **{version}** against champion **{champion}**; stages "
        f"{policy.stages} %, bake {policy.bake_seconds:g} s each.\n\n"
        + (
            "Regression evidence:\n\n" + "\n".join(f"- `{k}`: {v[:200]}" for k, v in sorted(reg.items()))
            if reg
            else "No regression tags on this version."
        )
    )
    return plan


def _policy(plan: dict[str, Any]) -> CanaryPolicy:
    return CanaryPolicy.from_dict(plan["policy"], source=plan.get("policy_source", "<plan>"))


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
    tags = version_tags(model, version)
    summary = _stage_summary(tags, i)
    if summary is None:
        raise CanaryStateError(f"stage {i} of {model} version {version} has no judgement to continue from")
    if summary["decision"] in ("pass", "approved"):
        return True
    if summary["decision"] != "marginal":
        return False
    approved, who = _approval(approval)
    if approved:
        summary.update(decision="approved", approved_by=who)
        _set_tags(model, version, {f"{P}stage_{i}": summary}, ctx)
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
    """Move traffic to stage ``i`` (1-based); None when this stage has nothing to do.

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
    policy = _policy(plan)
    if plan["noop"] or i > len(plan["weights_bp"]):
        return None
    tags = version_tags(model, version)
    if tags.get(TAG_VERDICT) != IN_PROGRESS:
        return None
    if i == 1 and policy.require_approval:
        approved, who = _approval(start_approval)
        if not approved and _stage_summary(tags, 1) is None:
            reject(plan, f"not approved before traffic moved ({who or 'no answer'})", ctx)
            return None
    if i > 1 and not _resolve_marginal(plan, i - 1, prev_approval, ctx):
        return None
    own = _stage_summary(version_tags(model, version), i)
    if own and own["decision"] in ("pass", "approved"):
        log.info("stage %d of %s v%s already passed: resumed run skips it", i, model, version)
        return None
    started = datetime.fromisoformat(tags[TAG_STARTED]).timestamp()
    trips = _guard_trips(model, version, started, ctx)
    if trips:
        rollback(plan, f"router guard cut the canary: {trips[-1].get('reason')}", ctx, stage=i, guard=trips)
        return None
    weight = plan["weights_bp"][i - 1]
    want = desired_routes(
        ctx.router.get_routes(model), model, plan["champion"], version, weight, policy.guard
    )
    changed = _apply_routes(model, want, ctx)
    _crash_point(f"after_routes:{i}")
    _set_tags(model, version, {TAG_STAGE: str(i)}, ctx)
    now = _now()
    end = now + timedelta(seconds=policy.bake_seconds)
    log.info(
        "stage %d: %s v%s at %d bp (routes %s)", i, model, version, weight, "set" if changed else "unchanged"
    )
    return {
        "stage": i,
        "weight_bp": weight,
        "window_start": now.isoformat(),
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
    policy = _policy(plan)
    i = int(routed["stage"])
    tags = version_tags(model, version)
    if tags.get(TAG_VERDICT) != IN_PROGRESS:
        return {"decision": "ended", "stage": i, "verdict": tags.get(TAG_VERDICT)}
    root = events_root or ev.events_root()
    start, end = datetime.fromisoformat(routed["window_start"]), datetime.fromisoformat(routed["window_end"])
    table = ev.load_window(root, model, start, end)
    canary = ev.samples(table, CANARY, version)
    baseline = ev.samples(table, CHAMPION, champion)
    base_window = [start.isoformat(), end.isoformat()]
    need = min(m.min_samples for m in policy.judge.metrics)
    if baseline["error_rate"].size < need:
        since = datetime.fromisoformat(tags[TAG_STARTED])
        if since < start:
            baseline = ev.samples(ev.load_window(root, model, since, end), CHAMPION, champion)
            base_window = [since.isoformat(), end.isoformat()]
    trips = _guard_trips(model, version, datetime.fromisoformat(tags[TAG_STARTED]).timestamp(), ctx)
    weight = _canary_weight(ctx.router.get_routes(model), version)
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
    )
    summary = {
        "stage": i,
        "percent": routed["weight_bp"] / 100,
        "decision": result["decision"],
        "score": result["score"],
        "metrics": {m["name"]: m["classification"] for m in result["metrics"]},
        "n": {"canary": int(canary["error_rate"].size), "baseline": int(baseline["error_rate"].size)},
        "window": result["window"],
        "reasons": [r[:300] for r in result["reasons"][:4]],
    }
    _set_tags(model, version, {f"{P}stage_{i}": _fit(summary)}, ctx)
    result["evidence_md"] = evidence_markdown(plan, result)
    if result["decision"] == "rollback":
        rollback(plan, "; ".join(result["reasons"]), ctx, stage=i, guard=trips)
    return result


def _fit(summary: dict[str, Any]) -> dict[str, Any]:
    while len(json.dumps(summary)) > MAX_TAG_CHARS and summary["reasons"]:
        summary["reasons"] = summary["reasons"][:-1]
    return summary


def _interval(bounds: list[float | None] | None) -> str:
    """``[low, high]`` of a judge interval; an open (None) bound is shown as ∞, no interval (NoData) as nothing."""
    if not bounds or len(bounds) != 2 or bounds == [None, None]:
        return ""
    low = "-∞" if bounds[0] is None else _num(bounds[0])
    high = "∞" if bounds[1] is None else _num(bounds[1])
    return f"[{low}, {high}]"


def evidence_markdown(plan: dict[str, Any], result: dict[str, Any]) -> str:
    """Return a markdown table of a stage's judgement (shown in the approval form).

    Args:
        plan: the plan.
        result: the stage's judge result.

    Returns:
        Markdown.
    """
    lines = [
        f"**{plan['model']}** v{plan['version']} vs champion v{plan['champion']}, stage {result['stage']} "
        f"({result['weight_bp'] / 100:g} %): score **{result['score']}**, decision **{result['decision']}**",
        "",
        "| metric | class | canary | baseline | effect [interval] | tolerance | p | n canary / baseline |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for m in result["metrics"]:
        c, b = (
            m["canary"].get("p50", m["canary"].get("mean")),
            m["baseline"].get("p50", m["baseline"].get("mean")),
        )
        lines.append(
            f"| {m['name']} | {m['classification']}{' (failed)' if m['failed'] else ''} | {_num(c)} | {_num(b)} "
            f"| {_num(m['effect'])} {_interval(m.get('interval'))} | {_num(m['tolerance'])} | {_num(m['p_value'])} | {m['n_canary']} / {m['n_baseline']} |"
        )
    lines += ["", *[f"- {r}" for r in result["reasons"]]]
    return "\n".join(lines)


def _num(x: Any) -> str:
    return "-" if x is None else f"{x:.4g}"


# ---------------------------------------------------------------------------- terminal actions


def rollback(
    plan: dict[str, Any],
    reason: str,
    ctx: Ctx,
    stage: int | None = None,
    guard: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Send all traffic back to the champion, tag the verdict, audit, release the lock, notify.

    Routes first (traffic is safe at once), then the registry; every part is skipped when already
    done, so a re-run after a crash completes it without repeating anything.

    Args:
        plan: the plan.
        reason: why, in words (stored in ``modelgate.canary.reason``).
        ctx: actor, run and router.
        stage: the stage that failed.
        guard: guard events behind the rollback.

    Returns:
        The rollback record.
    """
    from include.registry.audit import append_audit

    model, version, champion = plan["model"], plan["version"], plan["champion"]
    policy = _policy(plan)
    before = ctx.router.get_routes(model)
    _apply_routes(model, desired_routes(before, model, champion, None, 0, None), ctx)
    tags = version_tags(model, version)
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
        "ts": _now().isoformat(),
    }
    if tags.get(TAG_VERDICT) != ROLLED_BACK:
        _set_tags(model, version, {TAG_VERDICT: ROLLED_BACK, TAG_REASON: reason[:MAX_TAG_CHARS]}, ctx)
        append_audit(
            ctx.actor, "canary.rollback", f"models:/{model}/{version}", {"routes": before}, record, ctx.run_id
        )
    release_lock(model, version, ctx)
    if tags.get(TAG_NOTIFIED) != ROLLED_BACK:
        err = nt.notify(policy.on_rollback, record)
        _set_tags(model, version, {TAG_NOTIFIED: ROLLED_BACK if err is None else f"failed: {err}"[:500]}, ctx)
    log.warning("canary of %s v%s rolled back: %s", model, version, reason)
    return record


def reject(plan: dict[str, Any], reason: str, ctx: Ctx) -> None:
    """End a canary that never took traffic (approval before traffic refused).

    Args:
        plan: the plan.
        reason: why.
        ctx: actor, run and router.
    """
    from include.registry.audit import append_audit

    model, version = plan["model"], plan["version"]
    _apply_routes(
        model, desired_routes(ctx.router.get_routes(model), model, plan["champion"], None, 0, None), ctx
    )
    if version_tags(model, version).get(TAG_VERDICT) != REJECTED:
        _set_tags(model, version, {TAG_VERDICT: REJECTED, TAG_REASON: reason}, ctx)
        append_audit(
            ctx.actor, "canary.reject", f"models:/{model}/{version}", None, {"reason": reason}, ctx.run_id
        )
    release_lock(model, version, ctx)


def finish(plan: dict[str, Any], ctx: Ctx, last_approval: Any = None) -> dict[str, Any]:
    """After the last stage: promote when it passed (or was approved), else report the end state.

    Args:
        plan: the plan.
        ctx: actor, run and router.
        last_approval: the HITL response to a marginal judgement of the last stage.

    Returns:
        ``{"verdict", "reason", "champion"}``.
    """
    model, version = plan["model"], plan["version"]
    if plan["noop"]:
        return {"verdict": "noop", "reason": plan["noop"], "champion": plan.get("champion")}
    tags = version_tags(model, version)
    verdict = tags.get(TAG_VERDICT)
    n = len(plan["weights_bp"])
    if verdict == IN_PROGRESS:
        if _stage_summary(tags, n) is None:
            raise CanaryStateError(
                f"canary of {model} v{version} is in progress but stage {n} was never judged"
            )
        if _resolve_marginal(plan, n, last_approval, ctx):
            return promote(plan, ctx)
    elif verdict == PROMOTED:
        return promote(plan, ctx)  # reconcile after a crash: every step is a no-op when done
    tags = version_tags(model, version)
    from include.registry.registry import get_alias_version

    return {
        "verdict": tags.get(TAG_VERDICT),
        "reason": tags.get(TAG_REASON),
        "champion": get_alias_version(model, "champion"),
    }


def promote(plan: dict[str, Any], ctx: Ctx) -> dict[str, Any]:
    """Move alias ``champion`` to the canary, keep the old one as ``previous_champion``, route 100 %.

    Args:
        plan: the plan.
        ctx: actor, run and router.

    Returns:
        ``{"verdict": "promoted", "champion", "previous_champion"}``.
    """
    from include.registry.audit import append_audit
    from include.registry.registry import set_alias

    model, version, old = plan["model"], plan["version"], plan["champion"]
    policy = _policy(plan)
    moved = set_alias(
        model,
        "champion",
        version,
        actor=ctx.actor,
        run_id=ctx.run_id,
        reason=f"canary passed {len(plan['weights_bp'])} stages",
    )
    if old != version:
        set_alias(
            model, PREVIOUS_ALIAS, old, actor=ctx.actor, run_id=ctx.run_id, reason=f"replaced by {version}"
        )
    _apply_routes(model, desired_routes(ctx.router.get_routes(model), model, version, None, 0, None), ctx)
    tags = version_tags(model, version)
    record = {
        "event": "promote",
        "model": model,
        "version": version,
        "previous_champion": old,
        "run_id": ctx.run_id,
        "actor": ctx.actor,
        "ts": _now().isoformat(),
    }
    if tags.get(TAG_VERDICT) != PROMOTED:
        _set_tags(
            model, version, {TAG_VERDICT: PROMOTED, TAG_PREVIOUS: old, TAG_REASON: "passed every stage"}, ctx
        )
        append_audit(
            ctx.actor, "canary.promote", f"models:/{model}/{version}", {"champion": old}, record, ctx.run_id
        )
    release_lock(model, version, ctx)
    if tags.get(TAG_NOTIFIED) != PROMOTED:
        err = nt.notify(policy.on_promote, record)
        _set_tags(model, version, {TAG_NOTIFIED: PROMOTED if err is None else f"failed: {err}"[:500]}, ctx)
    log.info("canary of %s v%s promoted (alias moved: %s)", model, version, moved)
    return {"verdict": PROMOTED, "champion": version, "previous_champion": old}


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
    if version_tags(plan["model"], plan["version"]).get(TAG_VERDICT) != IN_PROGRESS:
        return None
    return rollback(plan, f"canary run failed in {', '.join(sorted(failed_tasks))}", ctx)
