"""End to end: ``make demo`` (both scenarios) on a fresh local stack, the summaries checked.

``good``: v1 registered → champion; v2 registered → regression pass (Asset-scheduled) → canary
stages under live traffic → champion → A/B v1 against v2 analysed by ``ab_analysis``, ship approved
through the REST API. ``bad-canary`` on the same state: a slow copy of v2 passes regression, is
rolled back by the canary under live traffic, the champion keeps 100 %.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support import REPO, free_port

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def demo_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    home = tmp_path_factory.mktemp("demo")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "MLFLOW", "MODELGATE"))}
    env.update(
        MODELGATE_HOME=str(home),
        MODELGATE_MLFLOW_PORT=str(free_port()),
        MODELGATE_AIRFLOW_PORT=str(free_port()),
        MODELGATE_ROUTER_PORT=str(free_port()),
    )
    try:
        yield env
    finally:
        subprocess.run([sys.executable, "-m", "modelgate_dev.stack", "down"], cwd=REPO, env=env, timeout=120)


def _demo(env: dict[str, str], scenario: str) -> dict[str, Any]:
    res = subprocess.run(
        [sys.executable, "-m", "modelgate_dev.demo.run", "--scenario", scenario],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    home = Path(env["MODELGATE_HOME"])
    log = (home / "stack.log").read_text()[-3000:] if (home / "stack.log").exists() else ""
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-4000:] + log
    summary: dict[str, Any] = json.loads((home / "demo" / "summary.json").read_text())
    assert summary["scenario"] == scenario
    return summary


@pytest.mark.timeout(2400)  # two whole demos (each bounded at 900 s below); the suite's 900 s is per test
def test_demo_good_then_bad_canary(demo_env: dict[str, str]) -> None:
    good = _demo(demo_env, "good")
    v2 = good["candidate"]["version"]
    assert good["regression"]["verdict"] == "pass"
    canary = good["canary"]
    assert canary["verdict"] == "promoted" and str(canary["champion"]) == v2
    assert [s["percent"] for s in canary["stages"]] == [10.0, 50.0, 100.0]
    assert canary["traffic"]["server_errors"] == 0 and canary["traffic"]["by_version"].get(v2, 0) > 0
    ab = good["ab"]
    assert ab["decision"] == "ship" and ab["winner_version"] == v2 and str(ab["champion"]) == v2
    assert ab["ci"][0] <= ab["true_lift"] <= ab["ci"][1], "the simulated lift lies inside the reported interval"
    assert ab["approvals"] and ab["approvals"][0]["task_id"] == "ship_gate.approve"
    assert good["audit"]["ok"] and good["audit"]["records"] > 10
    assert good["seconds"] < 600, good["stages"]
    # the plugin page and the regression, A/B and drift reports, each loaded in Chromium with its key text
    shots = good["screenshots"]
    assert {"plugin.png", "regression.png", "abtest.png", "drift.png"} <= set(shots), shots
    assert all(shot["ok"] for shot in shots.values()), shots

    bad = _demo(demo_env, "bad-canary")
    slow = bad["candidate"]["version"]
    assert slow != v2 and bad["regression"]["verdict"] == "pass", "the slow copy passes regression offline"
    outcome = bad["canary"]
    assert outcome["verdict"] == "rolled_back" and outcome["reason"], outcome
    assert str(outcome["champion"]) == v2 and bad["aliases"]["champion"] == v2
    assert [r for r in outcome["routes"] if r[2] > 0] == [["champion", f"models:/churn/{v2}", 10000]]
    assert bad["audit"]["ok"]
    assert bad["seconds"] < 600, bad["stages"]
    assert bad["screenshots"].get("plugin.png", {}).get("ok"), bad["screenshots"]
