"""The traffic generator against a real router process: pacing, bounds, unit stickiness, events."""

from __future__ import annotations

import json
import time

import pyarrow.dataset as ds
import pytest
from serving.conftest import Router
from support import free_port

from include.synthetic.spec import FeatureSpec
from modelgate_dev.traffic import __main__ as cli
from modelgate_dev.traffic.errors import TrafficError
from modelgate_dev.traffic.generator import TrafficConfig, TrafficThread, consents, input_pool, run_traffic


def test_traffic_is_paced_bounded_and_split_by_unit_between_variants(
    router: Router, spec: FeatureSpec
) -> None:
    cfg = TrafficConfig(router.url, "churn", rate=100, duration_s=3.0, n_units=200, seed=1)
    t = time.monotonic()
    rep = run_traffic(cfg, spec)
    took = time.monotonic() - t
    assert rep.sent == rep.ok, rep
    assert 250 <= rep.sent <= 300, "about rate * duration requests"
    assert took < 6.0
    assert set(rep.by_variant) == {"champion", "canary"}
    share = rep.by_variant["canary"] / rep.ok
    assert 0.08 < share < 0.35, f"canary share {share} should be near its 20 % weight"
    assert rep.units_by_variant["champion"] + rep.units_by_variant["canary"] <= 200, (
        "each unit sticks to one variant"
    )


def test_max_requests_bounds_the_run_and_the_router_records_every_answer(
    router: Router, spec: FeatureSpec
) -> None:
    rep = run_traffic(
        TrafficConfig(router.url, "churn", rate=500, duration_s=30, max_requests=120, seed=2), spec
    )
    assert rep.sent == 120 and rep.ok == 120
    time.sleep(1.5)  # the router flushes events every 0.5 s in tests
    table = ds.dataset(str(router.events_root), format="parquet", partitioning="hive").to_table()
    assert table.num_rows == 120
    # requests without consent are recorded without a unit id (docs/privacy.md)
    units = {u for u in table.column("unit_id").to_pylist() if u is not None}
    assert all(u.startswith("u") for u in units) and len(units) > 50


def test_units_send_their_fixed_consent_and_the_router_records_it(router: Router, spec: FeatureSpec) -> None:
    from scipy.stats import binom

    cfg = TrafficConfig(router.url, "churn", rate=500, duration_s=30, max_requests=200, seed=3, consent_rate=0.7)
    rep = run_traffic(cfg, spec)
    assert rep.ok == 200
    time.sleep(1.5)
    table = ds.dataset(str(router.events_root), format="parquet", partitioning="hive").to_table()
    rows = list(zip(table.column("unit_id").to_pylist(), table.column("consent").to_pylist(), strict=True))
    with_id = {u: c for u, c in rows if u is not None}
    # a consenting unit's events carry its id; a non-consenting unit's carry none (docs/privacy.md)
    assert with_id and all(c and consents(u, cfg) for u, c in with_id.items())
    anonymous = [c for u, c in rows if u is None]
    assert anonymous and not any(anonymous), "the units without consent are recorded, anonymously"
    population = [consents(f"u{i}", cfg) for i in range(cfg.n_units)]
    lo, hi = binom.interval(0.999, cfg.n_units, 0.7)
    assert lo <= sum(population) <= hi
    with pytest.raises(TrafficError, match="consent_rate"):
        TrafficConfig(router.url, "churn", consent_rate=1.5)


def _served(router: Router) -> float:
    with router.client() as c:
        return sum(
            float(line.split()[-1])
            for line in c.get("/metrics").text.splitlines()
            if line.startswith('router_requests_total{model="churn"')
        )


def test_background_thread_stops_on_request(router: Router, spec: FeatureSpec) -> None:
    before = _served(router)
    th = TrafficThread(TrafficConfig(router.url, "churn", rate=50, duration_s=60), spec).start()
    # wait on the router's own count, not a fixed sleep: the thread's start-up (input pool, event loop)
    # took most of a second on a loaded CI machine
    deadline = time.monotonic() + 30
    while _served(router) - before < 20 and time.monotonic() < deadline:
        time.sleep(0.1)
    t = time.monotonic()
    rep = th.stop()
    assert time.monotonic() - t < 5, "stop() returns promptly"
    assert rep.sent >= 20 and rep.ok == rep.sent, rep
    # it stopped long before its 60 s and kept to its pace (at most one request ahead of rate * elapsed)
    assert rep.elapsed_s < 30 and rep.sent <= 50 * rep.elapsed_s + 1, rep
    time.sleep(0.5)
    assert _served(router) - before == rep.sent, "nothing is sent after stop()"


def test_inputs_have_no_missing_values_and_the_same_seed_gives_the_same_pool(spec: FeatureSpec) -> None:
    a, b = input_pool(spec, 300, seed=5), input_pool(spec, 300, seed=5)
    assert a.shape == (300, 30) and a.dtype.name == "float32"
    assert (a == b).all() and not (a != a).any()


def test_bad_settings_and_unreachable_router_fail_with_a_clear_message(spec: FeatureSpec) -> None:
    with pytest.raises(TrafficError, match="rate must be in") as e:
        TrafficConfig("http://127.0.0.1:1", "churn", rate=0)
    assert "invalid traffic settings" in e.value.message
    with pytest.raises(TrafficError, match="router_url must start with http"):
        TrafficConfig("127.0.0.1:8500", "churn")
    cfg = TrafficConfig(f"http://127.0.0.1:{free_port()}", "churn", rate=50, duration_s=5, max_requests=5)
    with pytest.raises(TrafficError, match="no request reached the router"):
        run_traffic(cfg, spec)


def test_cli_prints_the_report_and_exits_2_on_bad_input(
    router: Router, spec: FeatureSpec, tmp_path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "spec.json"
    spec.to_json(path)
    assert (
        cli.main(
            [
                "--router-url",
                router.url,
                "--model",
                "churn",
                "--spec",
                str(path),
                "--rate",
                "200",
                "--max-requests",
                "20",
            ]
        )
        == 0
    )
    assert json.loads(capsys.readouterr().out)["ok"] == 20
    assert (
        cli.main(["--router-url", router.url, "--model", "churn", "--spec", str(path), "--rate", "-1"]) == 2
    )
    assert "rate must be in" in capsys.readouterr().err


def test_traffic_spreads_over_every_replica_and_each_records_its_share(
    router: Router, spec: FeatureSpec, tmp_path
) -> None:
    import onnx
    from serving.conftest import start_router
    from support import stop

    from modelgate_dev.demo.models import build_linear_model

    path = tmp_path / "second.onnx"
    onnx.save(build_linear_model(30, seed=1, graph_name="champion"), str(path))
    second = start_router(
        tmp_path / "second", {"models": {"churn": {"variants": [{"name": "champion", "uri": str(path), "weight_bp": 10000}]}}}
    )
    try:
        cfg = TrafficConfig(router.url, "churn", rate=400, duration_s=30, max_requests=90, seed=4,
                            replica_urls=(second.url,))  # fmt: skip
        rep = run_traffic(cfg, spec)
        assert rep.ok == 90 and rep.by_replica == {router.url: 45, second.url: 45}, rep
        time.sleep(1.5)  # each router flushes its events every 0.5 s in tests
        for r in (router, second):
            table = ds.dataset(str(r.events_root), format="parquet", partitioning="hive").to_table()
            assert table.num_rows == 45, f"{r.url} recorded every request it answered"
    finally:
        stop(second.proc)
    with pytest.raises(TrafficError, match="replica_urls must start with http"):
        TrafficConfig(router.url, "churn", replica_urls=("127.0.0.1:8501",))
