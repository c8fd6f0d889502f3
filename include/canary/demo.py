"""The canary part of ``make demo``: live traffic while ``canary_promotion`` runs, then its outcome.

The demo's stack runs Airflow, MLflow and the router; ``canary_promotion`` is scheduled by the
regression Asset (or triggered with conf). :func:`run_canary_demo` sends traffic drawn from the
feature spec to the router until the canary run has ended (``wait_for_run`` returns), then reads the
outcome back from the registry, the router and the audit log.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from include.canary import controller as cc
from include.canary.router_client import RouterClient
from include.synthetic.spec import FeatureSpec
from include.traffic.generator import TrafficConfig, TrafficThread

log = logging.getLogger(__name__)


def canary_outcome(model: str, version: str, router: RouterClient) -> dict[str, Any]:
    """Return what a canary did: verdict, reason, stage summaries, aliases, routes and guard cuts.

    Args:
        model: the model name.
        version: the candidate version.
        router: the router admin client.

    Returns:
        JSON data for ``summary.json``.
    """
    from include.registry.registry import get_alias_version

    tags = cc.version_tags(model, version)
    stages = []
    for i in range(1, 10):
        raw = tags.get(f"{cc.P}stage_{i}")
        if raw is None:
            break
        stages.append(json.loads(raw))
    routes = router.get_routes(model) or {}
    return {
        "model": model,
        "version": version,
        "verdict": tags.get(cc.TAG_VERDICT),
        "reason": tags.get(cc.TAG_REASON),
        "stages": stages,
        "champion": get_alias_version(model, "champion"),
        "previous_champion": get_alias_version(model, cc.PREVIOUS_ALIAS),
        "routes": [(v["name"], v["uri"], v["weight_bp"]) for v in routes.get("variants", [])],
        "guard_events": [
            e
            for e in router.guard_events()
            if e.get("model") == model and str(e.get("version")) == str(version)
        ],
        "lock": cc.read_lock(model),
    }


def run_canary_demo(
    model_name: str,
    version: str,
    router_url: str,
    spec_path: Path | str,
    wait_for_run: Callable[[], Any],
    *,
    rate: float = 40.0,
    max_seconds: float = 480.0,
    n_units: int = 2000,
    admin_token: str | None = None,
) -> dict[str, Any]:
    """Send live traffic to the router while the canary runs, then return its outcome.

    Args:
        model_name: the model (as the router serves it).
        version: the candidate version.
        router_url: the router's base URL.
        spec_path: feature spec JSON the inputs are drawn from.
        wait_for_run: blocks until the ``canary_promotion`` run has ended and returns it (e.g.
            ``lambda: client.wait_for_run_after("canary_promotion", since, timeout=480)``).
        rate: requests per second.
        max_seconds: the traffic stops after this long whatever happens.
        n_units: size of the unit-id population.
        admin_token: router admin token (default ``ROUTER_ADMIN_TOKEN``).

    Returns:
        ``canary_outcome`` plus ``run`` (what ``wait_for_run`` returned) and ``traffic`` (the report).
    """
    spec = FeatureSpec.from_json(spec_path)
    cfg = TrafficConfig(router_url, model_name, rate=rate, duration_s=max_seconds, n_units=n_units)
    traffic = TrafficThread(cfg, spec).start()
    try:
        run = wait_for_run()
    finally:
        report = traffic.stop()
    out = canary_outcome(model_name, version, RouterClient(router_url, admin_token, actor="demo"))
    out["run"] = run
    out["traffic"] = report.to_dict()
    log.info("canary demo of %s v%s: %s", model_name, version, out["verdict"])
    return out
