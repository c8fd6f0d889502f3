"""The engine's reduction (DuckDB) against the Python reference and a raw pandas computation.

``reference_reduce`` is the former hand-written pyarrow reduction, kept in the tests as a second,
independent implementation: both must give the same sufficient statistics (1e-9 relative) and the
same decisions.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from ab_support import START, experiment, write_events
from reference_reduce import assert_same_sums, reduce_units, unit_sums, window_sums

from include.abtest.analysis import analyse_window, stats_from_sums
from include.abtest.reduce import DataError, reduce_window
from include.abtest.sufficient import MeanStats, ProportionStats, RatioStats
from modelgate_dev.abtest.generate import Population, event_schema, generate


def _hand_made(root: Path) -> None:
    h = timedelta(hours=1)
    write_events(
        root / "events",
        [
            {"ts": START + h, "variant": "a", "unit_id": "u1", "latency_ms": 2.0},
            {"ts": START + 2 * h, "variant": "a", "unit_id": "u1", "latency_ms": 4.0},
            {"ts": START + 2 * h, "variant": "b", "unit_id": "u1", "shadow": True},  # shadow: ignored
            {"ts": START + h, "variant": "b", "unit_id": "u2", "latency_ms": 3.0},
            {"ts": START + 30 * h, "variant": "b", "unit_id": "u3", "latency_ms": 1.0},
            {"ts": START + 31 * h, "variant": "b", "unit_id": "u3", "consent": False},  # u3 excluded
            {"ts": START + h, "variant": "a", "unit_id": "u4"},
            {"ts": START + 3 * h, "variant": "b", "unit_id": "u4"},  # u4 in two variants: excluded
            {"ts": START + h, "variant": "a", "unit_id": None},  # no unit
            {"ts": START + h, "variant": "a", "unit_id": "u5", "model": "other"},  # other model
            {"ts": START - h, "variant": "a", "unit_id": "u6"},  # before the window
            {"ts": START + 300 * h, "variant": "a", "unit_id": "u7"},  # after as_of
            {"ts": START + 5 * h, "variant": "c", "unit_id": "u8"},  # not a variant of the experiment
        ],
    )
    pq.write_table(
        pa.table({"unit_id": ["u1", "u1", "u2", "u3", "u9"], "converted": [1, 0, 1, 1, 1],
                  "revenue": [5.0, 2.0, 7.0, 1.0, 9.0]}),
        root / "outcomes.parquet",
    )  # fmt: skip


def test_reduction_excludes_shadow_non_consent_crossover_and_out_of_window_events(tmp_path: Path) -> None:
    _hand_made(tmp_path)
    red = reduce_units(experiment(), tmp_path / "events", tmp_path, START + timedelta(days=10))
    rows = {r["unit"]: r for r in red.table.to_pylist()}
    assert sorted(rows) == ["u1", "u2"]
    assert rows["u1"]["variant"] == "a" and rows["u1"]["requests"] == 2
    assert rows["u1"]["e_latency_ms"] == 6.0
    assert rows["u1"]["o_converted"] == 1.0 and rows["u1"]["o_revenue"] == 7.0
    assert rows["u2"]["o_revenue"] == 7.0
    assert rows["u1"]["first_ts"] == START + timedelta(hours=1)
    expected = {"events": 9, "events_without_unit": 1, "units_seen": 5, "units_in_several_variants": 1,
                "units_without_consent": 1, "units_unknown_variant": 1, "units": 2, "outcome_rows": 5}  # fmt: skip
    assert {k: red.counts[k] for k in expected} == expected
    # the engine: same counts; u1 (a) and u2 (b) by hand
    w = reduce_window(experiment(), tmp_path / "events", tmp_path, START + timedelta(days=10))
    assert w.engine == "duckdb" and w.counts == {**expected, "events_without_consent": 0}
    assert w.units.sum(axis=1).tolist() == [1.0, 1.0] and w.units[:, 0].tolist() == [1.0, 1.0]
    assert w.terms["m0_successes"].sum(axis=1).tolist() == [1.0, 1.0]  # converted: u1 1+0, u2 1
    assert w.terms["m1_sum"].sum(axis=1).tolist() == [7.0, 7.0]  # revenue: u1 5+2, u2 7
    assert w.terms["m1_sum_squares"].sum(axis=1).tolist() == [49.0, 49.0]
    assert w.terms["m2_num_sum"].sum(axis=1).tolist() == [6.0, 3.0]  # latency: u1 2+4, u2 3
    assert w.terms["m2_den_sum"].sum(axis=1).tolist() == [2.0, 1.0]  # requests
    assert w.terms["m2_cross_sum"].sum(axis=1).tolist() == [12.0, 3.0]


def test_outcomes_keyed_by_request_id_join_each_event(tmp_path: Path) -> None:
    h = timedelta(hours=1)
    write_events(
        tmp_path / "events",
        [
            {"ts": START + h, "variant": "a", "unit_id": "u1", "request_id": "q1"},
            {"ts": START + h, "variant": "a", "unit_id": "u1", "request_id": "q2"},
            {"ts": START + h, "variant": "b", "unit_id": "u2", "request_id": "q3"},
        ],
    )
    pq.write_table(
        pa.table({"request_id": ["q1", "q2", "q2", "q9"], "converted": [True, False, True, True],
                  "revenue": [1.0, 2.0, 3.0, 4.0]}),
        tmp_path / "labels.parquet",
    )  # fmt: skip
    exp = experiment(outcomes={"path": "labels.parquet", "key": "request_id"})
    red = reduce_units(exp, tmp_path / "events", tmp_path, START + timedelta(days=1))
    rows = {r["unit"]: r for r in red.table.to_pylist()}
    assert rows["u1"]["o_converted"] == 2.0 and rows["u1"]["o_revenue"] == 6.0
    assert rows["u2"]["o_converted"] == 0.0 and rows["u2"]["o_revenue"] == 0.0
    assert red.counts["outcome_rows"] == 4
    w = reduce_window(exp, tmp_path / "events", tmp_path, START + timedelta(days=1))
    assert w.counts["outcome_rows"] == 4 and w.counts["units"] == 2
    assert w.terms["m0_successes"].sum(axis=1).tolist() == [1.0, 0.0]  # u1: q1 1, q2 0+1 > 0
    assert w.terms["m1_sum"].sum(axis=1).tolist() == [6.0, 0.0]  # u1: 1 + 2 + 3
    assert w.terms["m1_sum_squares"].sum(axis=1).tolist() == [36.0, 0.0]


def test_csv_outcomes_and_request_units(tmp_path: Path) -> None:
    h = timedelta(hours=1)
    write_events(tmp_path / "events", [
        {"ts": START + h, "variant": "a", "unit_id": None, "request_id": "q1"},
        {"ts": START + h, "variant": "b", "unit_id": None, "request_id": "q2"},
    ])  # fmt: skip
    (tmp_path / "o.csv").write_text("request_id,converted,revenue\nq1,1,3.5\n")
    exp = experiment(unit="request_id", outcomes={"path": "o.csv", "format": "csv", "key": "request_id"})
    red = reduce_units(exp, tmp_path / "events", tmp_path, START + timedelta(days=1))
    rows = {r["unit"]: r for r in red.table.to_pylist()}
    assert rows["q1"]["o_revenue"] == 3.5 and rows["q2"]["o_revenue"] == 0.0
    assert red.counts["events_without_unit"] == 0
    w = reduce_window(exp, tmp_path / "events", tmp_path, START + timedelta(days=1))
    assert w.counts["units"] == 2 and w.counts["events_without_unit"] == 0
    assert w.terms["m1_sum"].sum(axis=1).tolist() == [3.5, 0.0]


def test_missing_data_and_columns_are_named(tmp_path: Path) -> None:
    _hand_made(tmp_path)
    end = START + timedelta(days=1)
    with pytest.raises(DataError, match="does not exist"):
        reduce_window(experiment(), tmp_path / "nope", tmp_path, end)
    pq.write_table(pa.table({"unit_id": ["u1"], "bought": [1]}), tmp_path / "outcomes.parquet")
    with pytest.raises(DataError, match=r"lack columns \['converted', 'revenue'\]"):
        reduce_window(experiment(), tmp_path / "events", tmp_path, end)
    pq.write_table(
        pa.table({"unit_id": ["u1"], "converted": ["yes"], "revenue": [1.0]}), tmp_path / "outcomes.parquet"
    )
    with pytest.raises(DataError, match="outcome column 'converted' is not numeric"):
        reduce_window(experiment(), tmp_path / "events", tmp_path, end)
    (tmp_path / "outcomes.parquet").write_bytes(b"not parquet")
    with pytest.raises(DataError, match=r"outcomes\.parquet"):
        reduce_window(experiment(), tmp_path / "events", tmp_path, end)
    pq.write_table(pa.table({"unit_id": ["u1", "u1"], "pre": [1.0, 2.0]}), tmp_path / "cov.parquet")
    exp = experiment(outcomes=None, primary={"name": "lat", "type": "mean", "source": "events", "column": "latency_ms"},
                     secondary=[], cuped={"path": "cov.parquet", "column": "pre"})  # fmt: skip
    with pytest.raises(DataError, match="unit_id repeats"):
        reduce_window(exp, tmp_path / "events", tmp_path, end)


def test_an_events_root_without_files_gives_no_units(tmp_path: Path) -> None:
    (tmp_path / "events").mkdir()
    pq.write_table(
        pa.table({"unit_id": ["u1"], "converted": [1], "revenue": [1.0]}), tmp_path / "outcomes.parquet"
    )
    w = reduce_window(experiment(), tmp_path / "events", tmp_path, START + timedelta(days=1))
    assert w.counts["events"] == 0 and w.counts["units"] == 0 and w.units.sum() == 0.0


def test_generator_writes_the_router_event_schema() -> None:
    from router.events import schema

    assert event_schema().equals(schema(), check_metadata=True)


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("gen")
    pop = Population(n_units=3000, variants={"a": 1, "b": 1}, lifts={"b": 0.2}, seed=3)
    return generate(pop, out, START, days=2, chunk_events=2500)


def test_per_variant_statistics_equal_a_raw_pandas_computation(generated) -> None:
    exp = experiment(outcomes={"path": str(generated.outcomes_path)})
    red = reduce_units(exp, generated.events_root, generated.events_root.parent, START + timedelta(days=2))
    # raw path: every event in memory with pandas
    ev = pd.read_parquet(generated.events_root)
    ev = ev[(ev["model"] == "churn") & ~ev["shadow"] & ev["unit_id"].notna()]
    per = ev.groupby("unit_id").agg(variant=("variant", "first"), nvar=("variant", "nunique"),
                                    consent=("consent", "min"), requests=("ts", "size"),
                                    latency=("latency_ms", "sum"))  # fmt: skip
    per = per[(per["nvar"] == 1) & per["consent"]]
    out = pd.read_parquet(generated.outcomes_path).groupby("unit_id")[["converted", "revenue"]].sum()
    per = per.join(out, how="left").fillna({"converted": 0, "revenue": 0})
    assert red.counts["units"] == len(per)
    assert red.counts["units"] == sum(generated.units_per_variant.values())
    for name in ("a", "b"):
        raw = per[per["variant"] == name]
        mask = np.asarray(red.table.column("variant").to_pylist()) == name
        sub = red.table.filter(pa.array(mask))
        conv = stats_from_sums(
            exp.primary, False, {k: float(v.sum()) for k, v in unit_sums(sub, exp.primary, False).items()}
        )
        assert conv == ProportionStats.from_values((raw["converted"] > 0).astype(float).to_numpy())
        rev = stats_from_sums(
            exp.secondary[0],
            False,
            {k: float(v.sum()) for k, v in unit_sums(sub, exp.secondary[0], False).items()},
        )
        ref = MeanStats.from_values(raw["revenue"].to_numpy())
        assert (
            rev.n == ref.n
            and rev.sum == pytest.approx(ref.sum)
            and rev.sum_squares == pytest.approx(ref.sum_squares)
        )
        lat = stats_from_sums(
            exp.guardrails[0],
            False,
            {k: float(v.sum()) for k, v in unit_sums(sub, exp.guardrails[0], False).items()},
        )
        lref = RatioStats.from_values(raw["latency"].to_numpy(), raw["requests"].to_numpy(dtype=float))
        assert isinstance(lat, RatioStats)
        assert lat.n == lref.n and lat.den_sum == lref.den_sum and lat.num_sum == pytest.approx(lref.num_sum)
        assert lat.cross_sum == pytest.approx(lref.cross_sum)


def test_small_batches_and_compaction_give_the_same_units(generated) -> None:
    exp = experiment(outcomes={"path": str(generated.outcomes_path)})
    end = START + timedelta(days=2)
    big = reduce_units(exp, generated.events_root, generated.events_root.parent, end)
    small = reduce_units(
        exp, generated.events_root, generated.events_root.parent, end, batch_rows=500, compact_rows=1000
    )
    assert small.counts["aggregations"] > 1 and big.counts["aggregations"] == 1
    a = big.table.sort_by("unit").to_pandas()
    b = small.table.sort_by("unit").to_pandas()[a.columns]
    pd.testing.assert_frame_equal(a.reset_index(drop=True), b.reset_index(drop=True), check_dtype=False)


def _engine_and_reference(exp, g, end):
    w = reduce_window(exp, g.events_root, g.events_root.parent, end)
    r = window_sums(exp, reduce_units(exp, g.events_root, g.events_root.parent, end), end)
    return w, r


def _same_analysis(exp, w, r, as_of) -> None:
    a, b = analyse_window(exp, w, as_of), analyse_window(exp, r, as_of)
    assert a["decision"] == b["decision"]
    assert a["srm"] == b["srm"] and a["variants"] == b["variants"]
    for ma, mb in zip(a["metrics"], b["metrics"], strict=True):
        for arm in ma["arms"]:
            assert ma["arms"][arm]["n"] == mb["arms"][arm]["n"]
            assert ma["arms"][arm]["mean"] == pytest.approx(mb["arms"][arm]["mean"], rel=1e-9)
        for ca, cb in zip(ma["comparisons"], mb["comparisons"], strict=True):
            assert ca["significant"] == cb["significant"] and ca["good"] == cb["good"]
            assert ca["error"] == cb["error"]
            for key in ("p_value", "effect"):
                if cb[key] is None:
                    assert ca[key] is None, key
                else:
                    assert ca[key] == pytest.approx(cb[key], rel=1e-9, abs=1e-15), key
    for sa, sb in zip(a["cumulative"]["series"].values(), b["cumulative"]["series"].values(), strict=True):
        assert [p["n_control"] for p in sa] == [p["n_control"] for p in sb]
        assert [p["effect"] for p in sa] == pytest.approx([p["effect"] for p in sb], rel=1e-9, abs=1e-15)


def test_duckdb_and_the_python_reference_agree_to_1e_9_with_the_same_decision(generated) -> None:
    exp = experiment(outcomes={"path": str(generated.outcomes_path)},
                     guardrails=[{"name": "latency", "type": "ratio", "source": "events", "numerator": "latency_ms",
                                  "denominator": "requests", "direction": "decrease"},
                                 {"name": "errors", "type": "mean", "source": "events", "column": "error",
                                  "direction": "decrease"},
                                 {"name": "score", "type": "mean", "source": "events", "column": "score"}])  # fmt: skip
    for days in (1, 2):
        end = START + timedelta(days=days)
        w, r = _engine_and_reference(exp, generated, end)
        assert w.counts["units"] > 2000 and w.days == days
        assert_same_sums(w, r)
        _same_analysis(exp, w, r, end)


def test_duckdb_and_the_reference_agree_with_cuped_and_fixed_horizon_tests(generated) -> None:
    exp = experiment(outcomes={"path": str(generated.outcomes_path)},
                     cuped={"path": str(generated.covariates_path), "column": "pre_conversions",
                            "metrics": ["conversion", "revenue"]},
                     sequential={"enabled": False})  # fmt: skip
    end = START + timedelta(days=2)
    w, r = _engine_and_reference(exp, generated, end)
    assert w.counts["units_without_covariate"] == r.counts["units_without_covariate"]
    assert "m0_pre_sum" in w.terms
    assert_same_sums(w, r)
    _same_analysis(exp, w, r, end)


def test_duckdb_and_the_reference_agree_on_request_keyed_labels(generated, tmp_path: Path) -> None:
    ev = pd.read_parquet(generated.events_root, columns=["request_id"]).iloc[::3]
    rng = np.random.default_rng(7)
    labels = pa.table({"request_id": ev["request_id"].to_numpy(), "converted": rng.integers(0, 2, len(ev)),
                       "revenue": rng.exponential(3.0, len(ev))})  # fmt: skip
    pq.write_table(labels, tmp_path / "labels.parquet")
    exp = experiment(outcomes={"path": str(tmp_path / "labels.parquet"), "key": "request_id"})
    end = START + timedelta(days=2)
    w, r = _engine_and_reference(exp, generated, end)
    assert w.counts["outcome_rows"] == len(ev)
    assert_same_sums(w, r)
    _same_analysis(exp, w, r, end)
