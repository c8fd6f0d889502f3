"""Simulator and demo stage through a real router: sticky units, consent, and the known lift inside the interval."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow.dataset as ds
from serving.conftest import start_router, two_variants
from support import make_logreg_onnx, stop

from modelgate_dev.abtest.demo import run_ab_demo
from modelgate_dev.abtest.simulator import Simulation, simulate


def test_demo_stage_through_a_real_router_finds_the_known_lift(tmp_path: Path, tracking_uri: str) -> None:
    a = make_logreg_onnx(tmp_path / "a.onnx", seed=1)
    b = make_logreg_onnx(tmp_path / "b.onnx", seed=2)
    routes = two_variants(a, b, canary_bp=5000)
    routes["models"]["churn"]["variants"][0]["name"] = "v1"
    routes["models"]["churn"]["variants"][1]["name"] = "v2"
    r = start_router(tmp_path / "router", routes)
    try:
        out = run_ab_demo(r.url, "churn", r.events_root, tmp_path / "demo", control=("v1", "1"),
                          treatment=("v2", "2"), lift=0.5, n_units=1500, requests_per_unit=2,
                          tracking_uri=tracking_uri, wait_seconds=60)  # fmt: skip
    finally:
        stop(r.proc)
    assert out["ci"][0] <= 0.5 <= out["ci"][1]
    assert out["decision"] in {"ship", "keep running"}
    assert out["run_url"].startswith(tracking_uri)
    ev = ds.dataset(str(r.events_root), format="parquet", partitioning="hive").to_table().to_pandas()
    assert (ev.groupby("unit_id")["variant"].nunique() == 1).all()  # sticky per unit
    assert len(ev) == 3000


def test_simulator_sends_consent_headers_and_records_the_router_assignment(tmp_path: Path) -> None:
    a = make_logreg_onnx(tmp_path / "a.onnx", seed=1)
    b = make_logreg_onnx(tmp_path / "b.onnx", seed=2)
    r = start_router(tmp_path / "router", two_variants(a, b, canary_bp=5000))
    try:
        res = simulate(Simulation(router_url=r.url, model="churn", n_units=60, requests_per_unit=2,
                                  consent_rate=0.5, seed=4), tmp_path / "sim")  # fmt: skip
        time.sleep(1.5)
    finally:
        stop(r.proc)
    ev = ds.dataset(str(r.events_root), format="parquet", partitioning="hive").to_table().to_pandas()
    assert res.requests == 120 == len(ev)
    # consenting units' events carry their id; the others' carry none (issue 17, docs/privacy.md)
    named, anonymous = ev[ev["unit_id"].notna()], ev[ev["unit_id"].isna()]
    assigned = named.groupby("unit_id")["variant"].first().to_dict()
    assert assigned and assigned == {u: res.variant_of[u] for u in assigned}
    assert named["consent"].all() and len(anonymous) > 0 and not anonymous["consent"].any()
    assert len(named) + len(anonymous) == 120 and len(anonymous) == 2 * (len(res.variant_of) - len(assigned))
    out = ds.dataset(str(res.outcomes_path)).to_table().to_pandas()
    assert sorted(out["unit_id"]) == sorted(res.variant_of)
    assert datetime.now(UTC) - ev["ts"].max().to_pydatetime() < timedelta(minutes=5)
