"""The guard: a rolling window of outcomes per non-champion variant, and the cut when it trips.

When the window holds at least ``min_requests`` and the error share exceeds ``max_error_rate`` or the
share slower than ``max_latency_ms`` exceeds ``max_slow_rate``, the variant's weight goes to the
champion at once in this replica, and the cut is recorded (guard event, change log); the control
thread then writes it through the store, so every replica stops sending traffic to the variant.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from router.routes import ModelRoutes

if TYPE_CHECKING:
    from router.dataplane import DataPlane
    from router.tables import ModelTable, VariantRuntime

log = logging.getLogger(__name__)

GUARD_ACTOR = "router-guard"
"""The actor of guard cuts, in the change log and in the store's audit records."""


def observe(plane: DataPlane, mt: ModelTable, v: VariantRuntime, ok: bool, latency: float) -> None:
    """Add one outcome of a guarded variant to its window; cut the variant when the window trips.

    Args:
        plane: the data plane.
        mt: the model's table.
        v: the variant (guarded).
        ok: whether it answered.
        latency: its inference time in seconds.
    """
    g = mt.guard
    n, errs, slow = v.stats.guard_observe(ok, latency > mt.max_latency_s, g.window)
    if n >= g.min_requests and (errs / n > g.max_error_rate or slow / n > g.max_slow_rate):
        reason = (
            f"error rate {errs / n:.3f} > {g.max_error_rate}"
            if errs / n > g.max_error_rate
            else f"share slower than {g.max_latency_ms} ms {slow / n:.3f} > {g.max_slow_rate}"
        )
        plane.trip(mt.name, v.name, reason, {"requests": n, "errors": errs, "slow": slow})


def cut_document(data: dict[str, Any], variant: str, champion: str) -> int:
    """Set ``variant``'s weight to 0 in routes data and give it to ``champion`` (in place).

    Args:
        data: one model's routes as JSON data.
        variant: the variant to cut.
        champion: the variant that receives its weight.

    Returns:
        The weight cut (0 when it already had none).
    """
    cut = 0
    for v in data["variants"]:
        if v["name"] == variant:
            cut, v["weight_bp"] = v["weight_bp"], 0
    for v in data["variants"]:
        if v["name"] == champion:
            v["weight_bp"] += cut
    return cut


def cut_variant(plane: DataPlane, model: str, variant: str, reason: str, window: dict[str, int]) -> bool:
    """Cut a variant to zero weight in the table served now, give its weight to the champion, record why.

    This is the local, immediate half of a trip; ``router.control`` writes the cut through the store
    so that every replica follows.

    Args:
        plane: the data plane.
        model: the model.
        variant: the variant to cut.
        reason: why, in words.
        window: the guard window counts that triggered it.

    Returns:
        Whether anything was cut (False when the variant already had no weight).
    """
    mt = plane.table.models.get(model)
    if mt is None or variant not in mt.variants or mt.variants[variant].weight_bp == 0:
        return False
    before = mt.routes.model_dump(mode="json")
    data = mt.routes.model_dump(mode="json")
    cut = cut_document(data, variant, mt.champion)
    routes = ModelRoutes.model_validate(data)
    new_mt = plane.loader.model_table(model, routes, {r.name: r.model for r in mt.runtimes()})
    new_mt.variants[variant].stats.reset_guard()
    plane.install(plane.replace_model(model, new_mt))
    plane.log.guard_event(
        {
            "ts": time.time(),
            "model": model,
            "variant": variant,
            "version": mt.variants[variant].version,
            "weight_bp_before": cut,
            "champion": mt.champion,
            "reason": reason,
            "window": window,
        }
    )
    log.warning("guard cut %s/%s to 0 bp: %s", model, variant, reason)
    plane.record_change(GUARD_ACTOR, "guard.cut", f"routes:{model}", before, routes.model_dump(mode="json"))
    return True
