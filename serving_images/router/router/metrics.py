"""Prometheus text exposition, rendered on scrape from plain counters (nothing costly per request)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from router.stats import LATENCY_BUCKETS

if TYPE_CHECKING:
    from router.app import RouterApp
    from router.dataplane import DataPlane


def _esc(v: str) -> str:
    return v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def render_metrics(plane: DataPlane, app: RouterApp) -> str:
    """Return the metrics page.

    Args:
        plane: the data plane.
        app: the HTTP app (response counters).

    Returns:
        Prometheus text format 0.0.4.
    """
    out: list[str] = []
    add = out.append
    add("# HELP router_requests_total Scored requests per model and variant.")
    add("# TYPE router_requests_total counter")
    variants = []
    for mt in plane.table.models.values():
        for v in [*mt.variants.values(), *([mt.shadow] if mt.shadow else [])]:
            variants.append((mt, v))
    for mt, v in variants:
        lbl = f'model="{_esc(mt.name)}",variant="{_esc(v.name)}",version="{_esc(v.version)}",shadow="{str(v.stats.shadow).lower()}"'
        add(f"router_requests_total{{{lbl}}} {v.stats.requests}")
    add("# HELP router_request_errors_total Requests a model failed to score.")
    add("# TYPE router_request_errors_total counter")
    for mt, v in variants:
        lbl = f'model="{_esc(mt.name)}",variant="{_esc(v.name)}",shadow="{str(v.stats.shadow).lower()}"'
        add(f"router_request_errors_total{{{lbl}}} {v.stats.errors}")
    add("# HELP router_inference_seconds Model inference time.")
    add("# TYPE router_inference_seconds histogram")
    for mt, v in variants:
        base = f'model="{_esc(mt.name)}",variant="{_esc(v.name)}",shadow="{str(v.stats.shadow).lower()}"'
        cum = 0
        for bound, n in zip(LATENCY_BUCKETS, v.stats.buckets, strict=False):
            cum += n
            add(f'router_inference_seconds_bucket{{{base},le="{bound}"}} {cum}')
        add(f'router_inference_seconds_bucket{{{base},le="+Inf"}} {v.stats.requests}')
        add(f"router_inference_seconds_sum{{{base}}} {v.stats.latency_sum}")
        add(f"router_inference_seconds_count{{{base}}} {v.stats.requests}")
    add("# HELP router_variant_weight_bp Current weight of a variant in basis points.")
    add("# TYPE router_variant_weight_bp gauge")
    weights = {(mt.name, v.name): v.weight_bp for mt, v in variants if not v.stats.shadow}
    weights.update(dict.fromkeys(plane.retired, 0))  # taken out of the routes: 0 bp, not a vanished series
    out.extend(
        f'router_variant_weight_bp{{model="{_esc(m)}",variant="{_esc(vn)}"}} {bp}'
        for (m, vn), bp in weights.items()
    )
    add("# HELP router_guard_trips_total Variants cut to zero weight by the guard.")
    add("# TYPE router_guard_trips_total counter")
    trips: dict[tuple[str, str], int] = {}
    for e in plane.guard_events:
        k = (str(e["model"]), str(e["variant"]))
        trips[k] = trips.get(k, 0) + 1
    for (m, vn), n in sorted(trips.items()):
        add(f'router_guard_trips_total{{model="{_esc(m)}",variant="{_esc(vn)}"}} {n}')
    sink = plane.sink
    add("# HELP router_events_written_total Prediction events written to the sink.")
    add("# TYPE router_events_written_total counter")
    add(f"router_events_written_total {sink.written if sink else 0}")
    add("# HELP router_events_dropped_total Prediction events dropped: the sink failed, fell behind or died.")
    add("# TYPE router_events_dropped_total counter")
    add(f"router_events_dropped_total {sink.dropped if sink else 0}")
    add("# HELP router_events_sink_failures_total Failed sink writes.")
    add("# TYPE router_events_sink_failures_total counter")
    add(f"router_events_sink_failures_total {sink.failures if sink else 0}")
    add("# HELP router_events_buffered Prediction events waiting in memory.")
    add("# TYPE router_events_buffered gauge")
    add(f"router_events_buffered {sink.buffered if sink else 0}")
    add("# HELP router_shadow_skipped_total Shadow scorings skipped because the shadow queue was full.")
    add("# TYPE router_shadow_skipped_total counter")
    add(f"router_shadow_skipped_total {plane.shadow_skipped}")
    add("# HELP router_http_responses_total HTTP responses by status code.")
    add("# TYPE router_http_responses_total counter")
    for code, n in sorted(app.http_responses.items()):
        add(f'router_http_responses_total{{code="{code}"}} {n}')
    out.extend(app.grpc.metric_lines() if app.grpc is not None else ())
    add("# HELP router_routes_revision Revision of the route table served now.")
    add("# TYPE router_routes_revision gauge")
    add(f"router_routes_revision {plane.table.revision}")
    add(
        "# HELP router_routes_generation Generation of the routes store served now (equal on every converged replica)."
    )
    add("# TYPE router_routes_generation gauge")
    add(f"router_routes_generation {plane.table.generation}")
    add(
        "# HELP router_routes_stale 1 while the routes store is unreachable (the last good routes are served)."
    )
    add("# TYPE router_routes_stale gauge")
    add(f"router_routes_stale {int(app.control.stale)}")
    resolver = plane.loader.resolver
    add(
        "# HELP router_registry_unreachable 1 while the latest registry call failed (models served from the cache)."
    )
    add("# TYPE router_registry_unreachable gauge")
    add(f"router_registry_unreachable {int(resolver.unreachable is not None)}")
    add(
        "# HELP router_registry_cache_fallbacks_total Model resolutions served from the local cache, registry down."
    )
    add("# TYPE router_registry_cache_fallbacks_total counter")
    add(f"router_registry_cache_fallbacks_total {resolver.fallbacks}")
    add("# HELP router_ready Whether the router takes traffic.")
    add("# TYPE router_ready gauge")
    add(f"router_ready {int(plane.ready and not plane.draining)}")
    return "\n".join(out) + "\n"
