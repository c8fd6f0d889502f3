"""The bad-canary demo model against a real router: inside the offline latency budget, cut by the demo guard."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
from serving.conftest import ADMIN_TOKEN, start_router
from support import stop

from include.canary.policy import REPO_POLICY_DIR, load_policy
from include.synthetic.spec import FeatureSpec
from modelgate_dev.canary.faulty import make_shifted_model, make_slow_model
from modelgate_dev.traffic.generator import TrafficConfig, run_traffic


def test_slow_canary_is_cut_by_the_demo_guard_under_live_traffic(tmp_path: Path) -> None:
    demo = load_policy("churn", REPO_POLICY_DIR / "canary_demo.yaml")
    champion = make_shifted_model(tmp_path / "champion.onnx", seed=1, graph_name="champion")
    slow = make_slow_model(tmp_path / "slow.onnx", target_ms=15.0, seed=1)
    routes = {
        "models": {
            "churn": {
                "variants": [
                    {"name": "champion", "uri": str(champion), "weight_bp": 5000},
                    {"name": "canary", "uri": str(slow), "weight_bp": 5000},
                ],
                "guard": demo.guard,
            }
        }
    }
    router = start_router(tmp_path / "router", routes)
    try:
        rng = np.random.default_rng(0)
        spec = FeatureSpec.fit(pd.DataFrame(rng.normal(size=(300, 30)), columns=[f"f{i}" for i in range(30)]))
        t = time.monotonic()
        rep = run_traffic(TrafficConfig(router.url, "churn", rate=60, duration_s=15, max_requests=400), spec)
        assert rep.server_errors == 0, "the slow model answers correctly, only late"
        with httpx.Client(base_url=router.url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}) as c:
            events = c.get("/admin/guard/events").json()["events"]
            weights = {
                v["name"]: v["weight_bp"]
                for v in c.get("/admin/models/churn/routes").json()["routes"]["variants"]
            }
        assert events and events[0]["variant"] == "canary" and "median latency" in events[0]["reason"], events
        assert weights == {"champion": 10000, "canary": 0}
        assert time.monotonic() - t < 20
    finally:
        stop(router.proc)
