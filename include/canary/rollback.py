"""Roll a model back to its previous champion, or abort a canary in progress: one command.

::

    python -m include.canary.rollback --model churn                # champion := previous_champion
    python -m include.canary.rollback --model churn --to 3         # champion := version 3
    python -m include.canary.rollback --model churn --abort        # end the canary in progress

The router (``--router-url`` / ``MODELGATE_ROUTER_URL``, token ``ROUTER_ADMIN_TOKEN``) gets
champion-only routes; aliases move with ``set_alias`` (audited); the demoted version is tagged
``modelgate.canary.verdict=rolled_back`` with the reason; an audit record ``champion.rollback`` is
appended. Running it twice is a no-op the second time.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from typing import Any

from include.canary import controller as cc
from include.canary.errors import CanaryStateError
from include.canary.routeplan import apply_routes, desired_routes
from include.canary.state import set_tags
from include.errors import ModelgateError
from include.routing.client import RouterAdmin, RouterClient

log = logging.getLogger(__name__)


def rollback_to_previous(
    model: str, router: RouterAdmin, actor: str, to: str | None = None, reason: str | None = None
) -> dict[str, Any]:
    """Make the previous champion (or ``to``) the champion again, in the registry and the router.

    Args:
        model: the model name.
        router: the router admin API.
        actor: who acts (audit log).
        to: the version to restore (default: alias ``previous_champion``).
        reason: why, recorded with the change.

    Returns:
        ``{"model", "champion", "demoted", "changed"}``.

    Raises:
        CanaryStateError: no previous champion, or a canary is in progress (abort it first).
    """
    from include.registry.audit import append_audit
    from include.registry.registry import get_alias_version

    lock = cc.read_lock(model)
    if lock:
        raise CanaryStateError(
            f"a canary of {model} version {lock['version']} is in progress; abort it first with --abort"
        )
    current = get_alias_version(model, "champion")
    target = to or get_alias_version(model, cc.PREVIOUS_ALIAS)
    if target is None:
        raise CanaryStateError(f"{model} has no previous_champion alias; name a version with --to")
    why = reason or f"rollback to version {target} by {actor}"
    ctx = cc.Ctx(router, actor)
    # routes first and served by every replica, then the aliases (the store is what is served)
    routed = apply_routes(model, desired_routes(router.get_routes(model), model, target, None, 0, None), ctx)
    changed = cc.move_champion(model, target, current, ctx, why, f"demoted by rollback to {target}")
    if changed and current is not None:
        set_tags(model, current, {cc.TAG_VERDICT: cc.ROLLED_BACK, cc.TAG_REASON: why}, ctx)
    if changed or routed:
        append_audit(
            actor,
            "champion.rollback",
            f"models:/{model}",
            {"champion": current},
            {"champion": target, "reason": why},
            None,
        )
    return {
        "model": model,
        "champion": target,
        "demoted": current if changed else None,
        "changed": changed or routed,
    }


def abort(model: str, router: RouterAdmin, actor: str, reason: str | None = None) -> dict[str, Any]:
    """Abort the canary in progress: routes back to the champion, verdict rolled_back, lock released.

    Args:
        model: the model name.
        router: the router admin API.
        actor: who acts.
        reason: why.

    Returns:
        The rollback record, or ``{"aborted": None}`` when no canary was in progress.
    """
    lock = cc.read_lock(model)
    if not lock:
        return {"aborted": None}
    tags = cc.version_tags(model, lock["version"])
    champion = tags.get(cc.TAG_BASELINE)
    if champion is None:
        from include.registry.registry import get_alias_version

        champion = get_alias_version(model, "champion")
    plan = {"model": model, "version": lock["version"], "champion": champion, "policy": {}, "weights_bp": []}
    ctx = cc.Ctx(router, actor, lock.get("run_id"))
    if tags.get(cc.TAG_VERDICT) in (None, cc.IN_PROGRESS):
        return cc.rollback(plan, reason or f"aborted by {actor}", ctx)
    cc.release_lock(model, lock["version"], ctx)
    return {"aborted": lock["version"], "verdict": tags.get(cc.TAG_VERDICT)}


def main(argv: list[str] | None = None) -> int:
    """Command line entry point.

    Args:
        argv: arguments (default ``sys.argv[1:]``).

    Returns:
        0 done, 2 refused (the message says why).
    """
    p = argparse.ArgumentParser(
        prog="python -m include.canary.rollback",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--model", required=True)
    p.add_argument("--to", default=None, help="version to restore (default: previous_champion)")
    p.add_argument("--abort", action="store_true", help="abort the canary in progress instead")
    p.add_argument("--reason", default=None)
    p.add_argument("--actor", default="cli")
    p.add_argument("--router-url", default=None)
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    if not os.environ.get("MLFLOW_TRACKING_USERNAME"):  # MLflow runs basic-auth: act as the registry writer
        from include.registry.credentials import role_identity, use_identity

        use_identity(role_identity("airflow"))
    router = RouterClient.from_env(a.router_url, actor=a.actor)
    try:
        out = (
            abort(a.model, router, a.actor, a.reason)
            if a.abort
            else rollback_to_previous(a.model, router, a.actor, a.to, a.reason)
        )
    except ModelgateError as e:
        print(f"error: {e.message}", file=sys.stderr)  # noqa: T201 - CLI output
        return 2
    print(json.dumps(out, indent=2, default=str))  # noqa: T201 - CLI output
    return 0


if __name__ == "__main__":
    sys.exit(main())
