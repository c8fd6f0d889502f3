"""The route plan of a canary: the routes each step wants, applied only when they differ.

Routes are the router's desired state for one model: the champion variant and, during a canary, the
canary variant at a weight in basis points; everything else in the current routes (salt, shadow,
guard unless replaced) is kept.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from include.canary.state import CANARY, CHAMPION
from include.routing.replicas import DEFAULT_CONVERGE_SECONDS
from modelgate_contracts.routes import TOTAL_BP, champion_of
from modelgate_contracts.uris import version_uri

if TYPE_CHECKING:
    from include.canary.state import Ctx

log = logging.getLogger(__name__)


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
    variants = [{"name": CHAMPION, "uri": version_uri(model, champion), "weight_bp": TOTAL_BP - canary_bp}]
    if canary is not None:
        variants.append({"name": CANARY, "uri": version_uri(model, canary), "weight_bp": canary_bp})
    routes["variants"] = variants
    routes["champion"] = CHAMPION
    if guard is not None:
        routes["guard"] = guard
    return routes


def same_routes(a: dict[str, Any] | None, b: dict[str, Any]) -> bool:
    if a is None:
        return False

    def key(r: dict[str, Any]) -> Any:
        vs = sorted((v["name"], v["uri"], int(v["weight_bp"])) for v in r.get("variants", []))
        return vs, champion_of(r)

    if key(a) != key(b):
        return False
    return all(a.get(k) == v for k, v in b.items() if k == "guard") if "guard" in b else True


def apply_routes(
    model: str, want: dict[str, Any], ctx: Ctx, converge_seconds: float = DEFAULT_CONVERGE_SECONDS
) -> bool:
    """Write ``want`` to the routes store when it differs, then wait until every replica serves it.

    Unchanged routes still wait (for the generation the admin replica serves), so a run resumed
    after a crash between the write and the wait does not start a bake before every replica serves.

    Args:
        model: the model name.
        want: the routes the step wants.
        ctx: actor, run and router.
        converge_seconds: how long the replicas may take.

    Returns:
        Whether the routes were written.

    Raises:
        NotConverged: a replica did not serve the change in time (the change itself is committed).
    """
    current = ctx.router.get_routes(model)
    if same_routes(current, want):
        generation = ctx.router.generation()
        changed = False
    else:
        generation = ctx.router.put_routes(model, want, ctx.run_id).get("generation")
        changed = True
    ctx.router.wait_converged(generation, converge_seconds)
    log.info("routes of %s %s; every replica serves generation %s", model, "set" if changed else "unchanged", generation)
    return changed


def canary_weight(routes: dict[str, Any] | None, version: str) -> int | None:
    for v in (routes or {}).get("variants", []):
        if v["name"] == CANARY and v["uri"].endswith(f"/{version}"):
            return int(v["weight_bp"])
    return None


def guard_trips(model: str, version: str, since: float, ctx: Ctx) -> list[dict[str, Any]]:
    return [
        e
        for e in ctx.router.guard_events()
        if e.get("model") == model
        and e.get("variant") == CANARY
        and str(e.get("version")) == str(version)
        and float(e.get("ts", 0)) >= since
    ]
