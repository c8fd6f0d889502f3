"""The decision of an analysis, and what happens after a human answers a ``ship``.

Rules, in order (``docs/experiments.md``):

1. ``keep running``: no unit in some variant yet.
2. ``invalid: SRM``: the split does not match the weights (chi-square p < 0.001); nothing
   else is read, and no decision can be taken on this data.
3. ``stop: harm``: a guardrail (unadjusted p) or the primary metric (adjusted p) of a
   treatment is significantly worse in its bad direction.
4. ``ship``: every variant has at least ``min_sample`` units and the primary metric of at
   least one treatment is significantly better (adjusted p < alpha); the winner is the
   significant treatment with the best effect.
5. ``stop: inconclusive``: the maximum duration has passed without a winner.
6. ``keep running`` otherwise.

``ship`` is only a proposal: it waits for a human. :func:`promote` ships the winner as a saga
whose every prefix is safe: (1) the experiment is marked ``shipping`` (registered-model tag
``modelgate.abtest.concluded.<id>``, from then on every analysis reports ``concluded``, never SRM);
(2) the winner gets 100 % in the routes store; (3) every router replica serves it; (4) aliases
``previous_champion`` then ``champion``; (5) the mark becomes ``shipped`` with one audit record.
Each step is idempotent: a re-run after a crash completes the ship once, and a second ship of a
concluded experiment is refused. A replica that does not converge restores the routes from before
and fails the ship (nothing promoted). :func:`approval_outcome` reads the human's answer, including
rejection and timeout, so the reason is recorded either way.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from include.abtest.errors import AbTestError
from include.canary import hooks
from include.routing.errors import NotConverged
from include.routing.replicas import DEFAULT_CONVERGE_SECONDS

if TYPE_CHECKING:
    from include.abtest.experiment import Experiment
    from include.routing.client import RouterAdmin

log = logging.getLogger(__name__)

SHIP = "ship"
KEEP_RUNNING = "keep running"
STOP_HARM = "stop: harm"
INVALID_SRM = "invalid: SRM"
STOP_INCONCLUSIVE = "stop: inconclusive"
CONCLUDED = "concluded"
DECISIONS = (SHIP, KEEP_RUNNING, STOP_HARM, INVALID_SRM, STOP_INCONCLUSIVE, CONCLUDED)
CONCLUDED_TAG = "modelgate.abtest.concluded."
"""Registered-model tag prefix; ``<prefix><experiment id>`` holds the experiment's conclusion (JSON)."""
SHIPPING, SHIPPED, SHIP_FAILED = "shipping", "shipped", "failed"


class PromotionError(AbTestError):
    """Raised when an approved winner cannot be promoted (no model version, unknown variant)."""

    code = "abtest_promotion_error"


def _decision(
    decision: str, reason: str, winner: str | None = None, version: str | None = None
) -> dict[str, Any]:
    return {"decision": decision, "reason": reason, "winner": winner, "winner_version": version}


def decide(exp: Experiment, results: dict[str, Any], as_of: datetime) -> dict[str, Any]:
    """Apply the decision rules to an analysis.

    Args:
        exp: the experiment.
        results: the results document of :func:`include.abtest.analysis.analyse_window`
            (``variants``, ``srm``, ``metrics``).
        as_of: time of the analysis.

    Returns:
        ``{"decision", "reason", "winner", "winner_version"}``.
    """
    units = {v["name"]: v["units"] for v in results["variants"]}
    empty = sorted(n for n, u in units.items() if u == 0)
    if empty:
        return _decision(KEEP_RUNNING, f"no units yet in {', '.join(empty)}")
    srm = results["srm"]
    if srm is not None and srm["mismatch"]:
        return _decision(
            INVALID_SRM,
            f"sample-ratio mismatch: units {srm['observed']} against expected "
            f"{[round(e, 1) for e in srm['expected']]} (p = {srm['p_value']:.2g} < {srm['threshold']})",
        )
    harms = []
    for m in results["metrics"]:
        if m["role"] not in ("guardrail", "primary"):
            continue
        for c in m["comparisons"]:
            if c["good"] is False:
                p = c["p_adjusted"] if c["p_adjusted"] is not None else c["p_value"]
                harms.append(f"{m['role']} {m['name']} of {c['variant']} worsened: effect {c['effect']:.4g} "
                             f"(CI {c['ci'][0]:.4g} .. {c['ci'][1]:.4g}, p = {p:.2g})")  # fmt: skip
    if harms:
        return _decision(STOP_HARM, "; ".join(harms))
    primary = next(m for m in results["metrics"] if m["role"] == "primary")
    winners = [c for c in primary["comparisons"] if c["good"] is True]
    short = sorted(n for n, u in units.items() if u < exp.min_sample)
    if winners and not short:
        sign = 1.0 if exp.primary.direction == "increase" else -1.0
        best = max(winners, key=lambda c: sign * c["effect"])
        version = exp.variant(best["variant"]).model_version
        return _decision(
            SHIP,
            f"{primary['name']} of {best['variant']} is better: effect {best['effect']:.4g} "
            f"(CI {best['ci'][0]:.4g} .. {best['ci'][1]:.4g}, adjusted p = {best['p_adjusted']:.2g}), "
            "no guardrail harmed, SRM passed",
            best["variant"],
            version,
        )
    if as_of >= exp.end:
        return _decision(
            STOP_INCONCLUSIVE, f"maximum duration ({exp.max_duration_days:g} days) passed without a winner"
        )
    if winners:
        return _decision(
            KEEP_RUNNING, f"a winner shows, but {', '.join(short)} have fewer than {exp.min_sample} units"
        )
    return _decision(KEEP_RUNNING, f"no significant effect on {primary['name']} yet")


def ship_form(exp: Experiment, results: dict[str, Any], report_url: str | None) -> dict[str, str]:
    """Subject and Markdown body of the approval request: the evidence a human decides on.

    Args:
        exp: the experiment.
        results: the results document with a ``ship`` decision.
        report_url: where the HTML report is (MLflow artifact URL), if logged.

    Returns:
        ``{"subject", "body"}``.
    """
    d = results["decision"]
    lines = [
        f"**Experiment** `{exp.id}` on model `{exp.model}`: proposal **ship `{d['winner']}`** "
        f"(model version {d['winner_version']}).",
        "",
        f"Reason: {d['reason']}.",
        "",
        "| metric | role | variant | effect | CI | p (adj.) |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for m in results["metrics"]:
        for c in m["comparisons"]:
            if c["error"]:
                lines.append(f"| {m['name']} | {m['role']} | {c['variant']} | error: {c['error']} | | |")
                continue
            lo, hi = c["ci"]
            lines.append(f"| {m['name']} | {m['role']} | {c['variant']} | {c['effect']:.4g} | "
                         f"{lo:.4g} .. {hi:.4g} | {c['p_adjusted']:.3g} |")  # fmt: skip
    units = ", ".join(
        f"{v['name']} {v['units']} ({v['expected_share']:.0%} expected)" for v in results["variants"]
    )
    srm = results["srm"]
    lines += ["", f"Units: {units}. SRM p = {srm['p_value']:.3g}." if srm else "", ""]
    if report_url:
        lines.append(f"Report: {report_url}")
    lines.append("Approve to move the registry alias `champion` and the router's traffic to the winner.")
    return {"subject": f"A/B {exp.id}: ship {d['winner']}?", "body": "\n".join(lines)}


def conclusion(exp: Experiment, tracking_uri: str | None = None) -> dict[str, Any] | None:
    """Return the experiment's conclusion, or None while it is open (or its model is not registered).

    Args:
        exp: the experiment.
        tracking_uri: MLflow server (default: settings).

    Returns:
        ``{"state": "shipping" | "shipped" | "failed", "winner", "version", "previous", "by",
        "run_id", "ts", ...}`` or None.
    """
    from mlflow.exceptions import MlflowException

    from include.registry.registry import get_client

    try:
        tags = get_client(tracking_uri).get_registered_model(exp.model).tags or {}
    except MlflowException:
        return None
    raw = tags.get(CONCLUDED_TAG + exp.id)
    return dict(json.loads(raw)) if raw else None


def is_concluded(done: dict[str, Any] | None) -> bool:
    """Whether a conclusion ends the experiment (``shipping`` or ``shipped``; a failed ship does not)."""
    return done is not None and done.get("state") in (SHIPPING, SHIPPED)


def concluded_decision(done: dict[str, Any]) -> dict[str, Any]:
    """The decision an analysis of a concluded experiment reports instead of analysing it.

    Args:
        done: the conclusion (:func:`conclusion`).

    Returns:
        ``{"decision": "concluded", "reason", "winner", "winner_version"}``.
    """
    what = "shipped" if done.get("state") == SHIPPED else "shipping (promotion in progress)"
    return _decision(
        CONCLUDED,
        f"experiment concluded: {what} {done.get('winner')} (version {done.get('version')}), approved by "
        f"{done.get('by')} in run {done.get('run_id')} at {done.get('ts')}; it is no longer analysed",
        done.get("winner"),
        done.get("version"),
    )


def _mark(exp: Experiment, done: dict[str, Any], tracking_uri: str | None) -> None:
    from include.registry.registry import get_client

    get_client(tracking_uri).set_registered_model_tag(exp.model, CONCLUDED_TAG + exp.id, json.dumps(done))


def _apply(routes: RouterAdmin, model: str, want: dict[str, Any], run_id: str | None, timeout: float) -> bool:
    """Write ``want`` when it differs from the served routes, then wait for every replica; True when written."""
    if routes.get_routes(model) == want:
        routes.wait_converged(routes.generation(), timeout)
        return False
    routes.wait_converged(routes.put_routes(model, want, run_id=run_id).get("generation"), timeout)
    return True


def promote(
    exp: Experiment,
    winner: str,
    *,
    actor: str,
    run_id: str | None,
    routes: RouterAdmin,
    alias: str = "champion",
    reason: str | None = None,
    tracking_uri: str | None = None,
    converge_seconds: float = DEFAULT_CONVERGE_SECONDS,
) -> dict[str, Any]:
    """Ship the winning variant: conclude, routes, every replica, aliases, audit (see the module doc).

    Args:
        exp: the experiment.
        winner: the winning variant's name.
        actor: who approved (recorded in the audit log).
        run_id: the Airflow run id.
        routes: the router client.
        alias: registry alias to move.
        reason: recorded with the alias move.
        tracking_uri: MLflow server (default: settings).
        converge_seconds: how long the router replicas may take to serve the winner.

    Returns:
        ``{"model", "winner", "version", "alias", "alias_moved", "previous_champion", "generation",
        "resumed"}``.

    Raises:
        PromotionError: the winner has no model version, the router does not serve it, the experiment
            is already concluded with a ship, or a replica did not converge (routes restored).
    """
    from include.registry.audit import append_audit
    from include.registry.registry import get_alias_version, set_alias

    try:
        variant = exp.variant(winner)
    except KeyError as e:
        raise PromotionError(f"{exp.id}: {winner!r} is not a variant of the experiment") from e
    if variant.name == exp.control_name:
        raise PromotionError(f"{exp.id}: the control {winner!r} is not a winner to promote")
    if not variant.model_version:
        raise PromotionError(f"{exp.id}: variant {winner!r} has no model_version to promote")
    version = variant.model_version
    done = conclusion(exp, tracking_uri)
    if done and done.get("state") == SHIPPED:
        raise PromotionError(
            f"{exp.id} is concluded: {done['winner']} (version {done['version']}) was shipped by {done['by']} "
            f"in run {done['run_id']}; an experiment ships once"
        )
    if done and done.get("state") == SHIPPING and done.get("winner") != winner:
        raise PromotionError(f"{exp.id} is already shipping {done['winner']}; {winner} cannot ship too")
    resumed = bool(done and done.get("state") == SHIPPING)
    current = routes.get_routes(exp.model)
    if current is None:
        raise PromotionError(f"the router does not serve model {exp.model!r}")
    names = [v["name"] for v in current["variants"]]
    if winner not in names:
        raise PromotionError(
            f"the router's routes of {exp.model!r} have no variant {winner!r}; they have {names}"
        )
    if not resumed:  # 1. concluded from here on: analyses stop before traffic moves
        previous = get_alias_version(exp.model, alias, tracking_uri)
        done = {"state": SHIPPING, "winner": winner, "version": version, "previous": previous, "by": actor,
                "run_id": run_id, "ts": datetime.now(UTC).isoformat(), "routes_before": current}  # fmt: skip
        _mark(exp, done, tracking_uri)
    assert done is not None
    hooks.reached("abtest:marked")
    new = dict(done["routes_before"])  # 2. the winner alone, in the store; 3. every replica serves it
    new["variants"] = [{**v, "weight_bp": 10000 if v["name"] == winner else 0} for v in new["variants"]]
    new["champion"] = winner
    try:
        _apply(routes, exp.model, new, run_id, converge_seconds)
    except NotConverged as e:
        log.error("%s: ship of %s did not reach every replica, restoring the routes: %s", exp.id, winner, e)
        try:
            _apply(routes, exp.model, done["routes_before"], run_id, converge_seconds)
        except NotConverged as again:
            log.error("%s: restored routes did not reach every replica either: %s", exp.id, again)
        _mark(exp, {**done, "state": SHIP_FAILED, "reason": e.message}, tracking_uri)
        append_audit(actor, "abtest.ship_failed", f"abtest:{exp.id}", {"winner": winner}, {"reason": e.message}, run_id)
        raise PromotionError(f"{exp.id}: {winner} not shipped, routes restored: {e.message}") from e
    hooks.reached("abtest:routes_converged")
    previous = done.get("previous")  # 4. aliases: previous_champion first, so a crash never loses it
    if previous is not None and previous != version:
        set_alias(exp.model, "previous_champion", previous, actor=actor, run_id=run_id,
                  reason=f"A/B experiment {exp.id}: replaced by {winner}", tracking_uri=tracking_uri)  # fmt: skip
    moved = set_alias(exp.model, alias, version, actor=actor, run_id=run_id,
                      reason=reason or f"A/B experiment {exp.id}: {winner} won", tracking_uri=tracking_uri)  # fmt: skip
    hooks.reached("abtest:aliases_moved")
    final = {k: v for k, v in done.items() if k != "routes_before"} | {"state": SHIPPED}
    _mark(exp, final, tracking_uri)  # 5. shipped, audited once
    append_audit(actor, "abtest.concluded", f"abtest:{exp.id}", {"champion": previous}, final, run_id)
    log.info("shipped %s of %s (version %s) by %s", winner, exp.model, version, actor)
    return {
        "model": exp.model,
        "winner": winner,
        "version": version,
        "alias": alias,
        "alias_moved": moved,
        "previous_champion": previous,
        "resumed": resumed,
    }


def approval_outcome(answer: dict[str, Any] | None) -> dict[str, Any]:
    """Interpret the approval task's result (``ApprovalOperator`` return value).

    Args:
        answer: ``{"chosen_options", "params_input", "responded_by_user", "responded_at"}``
            or None when the approval task produced nothing (it failed or was skipped).

    Returns:
        ``{"outcome": "approved" | "rejected" | "timed out" | "no answer", "by", "reason"}``.
    """
    if not answer:
        return {"outcome": "no answer", "by": None, "reason": "the approval task ended without an answer"}
    chosen = list(answer.get("chosen_options") or [])
    params = answer.get("params_input") or {}
    user = answer.get("responded_by_user")
    by = None
    if isinstance(user, dict):
        by = user.get("name") or user.get("id")
    elif user:
        by = str(user)
    reason = str(params.get("reason") or "") or None
    if "Approve" in chosen:
        return {"outcome": "approved", "by": by, "reason": reason}
    if by is None:
        return {
            "outcome": "timed out",
            "by": None,
            "reason": reason or "no answer before the response timeout",
        }
    return {"outcome": "rejected", "by": by, "reason": reason or "rejected without a reason"}
