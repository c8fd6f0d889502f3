"""A real guard trip on a real router fires ``RouterGuardTripped`` in a real Prometheus with deploy/prometheus's rules.

Prometheus (Debian's package; ``.ci/run`` installs it) scrapes the router every second and evaluates
``deploy/prometheus/modelgate.rules.yml``; the router's guard cuts a failing canary; the alert must go
firing with the model and variant as labels.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
import yaml
from conftest import two_variants
from support import REPO, free_port
from test_admin_guard import _send_until_cut

RULES = REPO / "deploy" / "prometheus" / "modelgate.rules.yml"


def _alerts(port: int) -> list[dict[str, object]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/alerts", timeout=5) as r:
            return list(json.loads(r.read())["data"]["alerts"])
    except OSError:
        return []


def test_guard_trip_fires_the_guard_alert_in_prometheus(router_factory, models, tmp_path: Path) -> None:
    exe = shutil.which("prometheus")
    if exe is None:
        pytest.fail("prometheus is not installed: apt-get install -y prometheus (.ci/run does this)")
    guard = {"window": 50, "min_requests": 10, "max_error_rate": 0.2}
    router = router_factory(two_variants(models["a"], models["broken"], canary_bp=3000, guard=guard))
    target = router.url.split("://", 1)[1]
    port = free_port()
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(RULES)],
        "scrape_configs": [{"job_name": "modelgate-router", "static_configs": [{"targets": [target]}]}],
    }
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    prom = subprocess.Popen(
        [exe, f"--config.file={tmp_path / 'prometheus.yml'}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        time.sleep(3)  # a few scrapes without any trip: nothing fires
        assert not [a for a in _alerts(port) if a["labels"]["alertname"] == "RouterGuardTripped"]  # type: ignore[index]
        n, _ = _send_until_cut(router, 300)
        assert n < 300, "the guard did not cut the failing canary"
        deadline = time.monotonic() + 60
        firing: list[dict[str, object]] = []
        while time.monotonic() < deadline and not firing:
            firing = [
                a for a in _alerts(port)
                if a["labels"]["alertname"] == "RouterGuardTripped" and a["state"] == "firing"  # type: ignore[index]
            ]  # fmt: skip
            time.sleep(0.5)
        assert firing, _alerts(port)
        labels = firing[0]["labels"]
        assert labels["model"] == "churn" and labels["variant"] == "canary"  # type: ignore[index]
    finally:
        prom.terminate()
        prom.wait(timeout=30)
