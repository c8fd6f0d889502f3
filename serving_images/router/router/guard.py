"""The guard: a rolling window of outcomes per non-champion variant, and the cut when it trips.

When the window holds at least ``min_requests`` and the error share exceeds ``max_error_rate``, the
share slower than ``max_latency_ms`` exceeds ``max_slow_rate``, or (``max_latency_excess_ms``) the
window's median latency exceeds the champion's median over the same period by more than that, the
variant's weight goes to the champion at once in this replica, and the cut is recorded (guard event,
change log); the control thread then writes it through the store, so every replica stops sending
traffic to the variant.
"""

from __future__ import annotations

import logging
import statistics
import time
from typing import TYPE_CHECKING, Any

from router.routes import ModelRoutes

if TYPE_CHECKING:
    from router.dataplane import DataPlane
    from router.tables import ModelTable, VariantRuntime

log = logging.getLogger(__name__)

GUARD_ACTOR = "router-guard"
"""The actor of guard cuts, in the change log and in the store's audit records."""


EXCESS_CHECK_EVERY = 10
"""The relative latency check (medians of two windows) runs on every this-many outcomes of a variant."""


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
    if n < g.min_requests:
        return
    reason: str | None = None
    if errs / n > g.max_error_rate:
        reason = f"error rate {errs / n:.3f} > {g.max_error_rate}"
    elif slow / n > g.max_slow_rate:
        reason = f"share slower than {g.max_latency_ms} ms {slow / n:.3f} > {g.max_slow_rate}"
    elif g.max_latency_excess_ms is not None and v.stats.requests % EXCESS_CHECK_EVERY == 0:
        reason = latency_excess(mt, v, n, g.max_latency_excess_ms)
    if reason is not None:
        plane.trip(mt.name, v.name, reason, {"requests": n, "errors": errs, "slow": slow})


def latency_excess(mt: ModelTable, v: VariantRuntime, n: int, limit_ms: float) -> str | None:
    """Compare a variant's median latency over its window with the champion's over the same period.

    The champion's outcomes are those recorded since the oldest outcome of the variant's window; when it
    had fewer than ``min_requests`` then (the variant took all the traffic), its last ``window`` ones.

    Args:
        mt: the model's table.
        v: the variant (guarded).
        n: outcomes in the variant's guard window.
        limit_ms: the largest median excess allowed, milliseconds.

    Returns:
        Why the variant trips, or ``None`` when it does not (or the champion has too few outcomes).
    """
    champion = mt.variants.get(mt.champion)
    if champion is None or champion is v:
        return None
    mine, oldest = v.stats.recent(n)
    base, _ = champion.stats.recent(mt.guard.window * 100, since=oldest)
    if len(base) < mt.guard.min_requests:
        base, _ = champion.stats.recent(mt.guard.window)
    if len(mine) < mt.guard.min_requests or len(base) < mt.guard.min_requests:
        return None
    m_v, m_c = statistics.median(mine) * 1000.0, statistics.median(base) * 1000.0
    if m_v - m_c <= limit_ms:
        return None
    return (
        f"median latency {m_v:.2f} ms exceeds the champion's {m_c:.2f} ms (same period, {len(base)} calls) "
        f"by {m_v - m_c:.2f} ms > {limit_ms} ms"
    )


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
