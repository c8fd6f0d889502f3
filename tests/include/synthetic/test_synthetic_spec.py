"""FeatureSpec: fitting, sampling, edge cases, JSON round trip and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import stats
from synthetic_reference import LATENT_CORRELATION, make_reference

from include.errors import ModelgateError
from include.synthetic import (
    CategoricalFeature,
    EmptyReferenceError,
    FeatureSpec,
    InvalidSampleSizeError,
    InvalidSpecError,
    NumericFeature,
    UnsupportedColumnError,
    UnsupportedSpecVersionError,
)
from include.synthetic.files import atomic_write

CONTINUOUS = ["income", "spend", "score"]


def _codes(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(plan=(frame["plan"] == "premium").astype(int), active=frame["active"].astype(int))


# ---------------------------------------------------------------------- fitting


def test_fit_keeps_column_order_and_classifies_columns(spec: FeatureSpec, reference: pd.DataFrame) -> None:
    assert spec.feature_names == list(reference.columns)
    kinds = {f.name: f.kind for f in spec.features}
    assert kinds == {
        "income": "continuous",
        "spend": "continuous",
        "visits": "integer",
        "plan": "categorical",
        "active": "categorical",
        "score": "continuous",
        "tier": "categorical",
    }
    assert spec.n_reference_rows == len(reference)
    plan = spec.features[3]
    assert isinstance(plan, CategoricalFeature)
    assert plan.values == ("basic", "premium")
    assert plan.frequencies[1] == pytest.approx((reference["plan"] == "premium").mean())


def test_fit_keeps_an_unsorted_column_order() -> None:
    frame = make_reference(500)[["tier", "score", "active", "income"]]
    spec = FeatureSpec.fit(frame)
    assert spec.feature_names == ["tier", "score", "active", "income"]
    assert list(spec.sample(10, seed=0).columns) == ["tier", "score", "active", "income"]
    assert list(spec.edge_cases().columns) == ["tier", "score", "active", "income"]


def test_numeric_feature_quantiles_match_reference(spec: FeatureSpec, reference: pd.DataFrame) -> None:
    income = spec.features[0]
    assert isinstance(income, NumericFeature)
    assert len(income.quantiles) >= 101
    assert income.min == reference["income"].min()
    assert income.max == reference["income"].max()
    levels = np.asarray(income.probabilities)
    assert np.allclose(income.quantiles, np.quantile(reference["income"], levels))


# ---------------------------------------------------------------------- sampling: marginals


@pytest.mark.parametrize("column", [*CONTINUOUS, "visits"])
def test_sample_marginal_matches_reference_by_ks_test_and_quantiles(
    column: str, reference: pd.DataFrame, sample: pd.DataFrame
) -> None:
    result = stats.ks_2samp(sample[column], reference[column])
    assert result.pvalue > 1e-3, f"{column}: KS statistic {result.statistic:.4f}"
    levels = np.linspace(0.05, 0.95, 19)
    ref_q = np.quantile(reference[column], levels)
    got_q = np.quantile(sample[column], levels)
    assert np.all(np.abs(got_q - ref_q) <= 0.05 * reference[column].std() + 1.0 * (column == "visits"))


def test_sample_restores_reference_dtypes(
    spec: FeatureSpec, reference: pd.DataFrame, sample: pd.DataFrame
) -> None:
    assert sample.dtypes.to_dict() == reference.dtypes.to_dict()
    assert len(sample) == 20_000


def test_integer_column_is_sampled_as_integers_within_reference_range(
    reference: pd.DataFrame, sample: pd.DataFrame
) -> None:
    visits = sample["visits"]
    assert visits.dtype == np.int64
    assert visits.min() >= reference["visits"].min()
    assert visits.max() <= reference["visits"].max()
    assert visits.nunique() > 10


@pytest.mark.parametrize("column", ["plan", "active", "tier"])
def test_categorical_frequencies_match_reference(
    column: str, reference: pd.DataFrame, sample: pd.DataFrame
) -> None:
    ref = reference[column].value_counts(normalize=True)
    got = sample[column].value_counts(normalize=True)
    assert set(got.index) == set(ref.index)
    for level in ref.index:
        assert abs(got[level] - ref[level]) < 0.015, level


# ---------------------------------------------------------------------- sampling: dependence


def test_sample_pearson_correlation_is_close_to_reference(
    reference: pd.DataFrame, sample: pd.DataFrame
) -> None:
    columns = ["income", "visits", "score", "tier"]
    diff = (sample[columns].corr() - reference[columns].corr()).abs().to_numpy()
    assert diff.max() < 0.05, diff


def test_sample_rank_correlation_is_close_to_reference_for_all_columns(
    reference: pd.DataFrame, sample: pd.DataFrame
) -> None:
    diff = (
        (_codes(sample).corr(method="spearman") - _codes(reference).corr(method="spearman")).abs().to_numpy()
    )
    assert diff.max() < 0.05, diff


def test_latent_correlation_of_copula_recovers_generating_correlation(spec: FeatureSpec) -> None:
    # income, spend, visits, plan are monotone transforms of the four latent normals
    latent = spec.correlation[np.ix_([0, 1, 2, 3], [0, 1, 2, 3])]
    assert np.abs(latent - LATENT_CORRELATION).max() < 0.05


def test_correlation_matrix_is_a_valid_correlation(spec: FeatureSpec) -> None:
    corr = spec.correlation
    assert np.allclose(corr, corr.T)
    assert np.allclose(np.diag(corr), 1.0)
    assert np.linalg.eigvalsh(corr).min() > -1e-9


def test_independent_columns_get_near_zero_correlation() -> None:
    rng = np.random.default_rng(5)
    frame = pd.DataFrame({"x": rng.normal(size=5000), "y": rng.exponential(size=5000)})
    spec = FeatureSpec.fit(frame)
    assert abs(spec.correlation[0, 1]) < 0.05


# ---------------------------------------------------------------------- determinism


def test_same_seed_gives_identical_frame(spec: FeatureSpec) -> None:
    pd.testing.assert_frame_equal(spec.sample(1000, seed=42), spec.sample(1000, seed=42))


def test_different_seeds_give_different_frames(spec: FeatureSpec) -> None:
    a, b = spec.sample(1000, seed=1), spec.sample(1000, seed=2)
    assert not a["income"].equals(b["income"])


def test_refitting_the_same_reference_gives_the_same_spec(reference: pd.DataFrame, spec: FeatureSpec) -> None:
    assert FeatureSpec.fit(reference) == spec


# ---------------------------------------------------------------------- missing values and small frames


def test_missing_values_are_kept_as_a_fraction() -> None:
    rng = np.random.default_rng(9)
    x = rng.normal(size=4000)
    x[rng.random(4000) < 0.2] = np.nan
    frame = pd.DataFrame({"x": x, "y": rng.normal(size=4000)})
    spec = FeatureSpec.fit(frame)
    assert spec.features[0].null_fraction == pytest.approx(np.isnan(x).mean())
    drawn = spec.sample(10_000, seed=0)
    assert drawn["x"].isna().mean() == pytest.approx(np.isnan(x).mean(), abs=0.02)
    assert drawn["y"].notna().all()


def test_constant_and_single_row_frames_are_sampled() -> None:
    spec = FeatureSpec.fit(pd.DataFrame({"c": [3.5] * 50, "x": np.arange(50.0)}))
    drawn = spec.sample(200, seed=0)
    assert (drawn["c"] == 3.5).all()
    one = FeatureSpec.fit(pd.DataFrame({"a": [1.25], "b": ["z"]}))
    drawn_one = one.sample(5, seed=0)
    assert drawn_one["a"].tolist() == [1.25] * 5
    assert drawn_one["b"].tolist() == ["z"] * 5


def test_category_dtype_keeps_its_level_order() -> None:
    levels = ["low", "mid", "high"]
    col = pd.Categorical(["low", "mid", "high", "mid"] * 50, categories=levels, ordered=True)
    spec = FeatureSpec.fit(pd.DataFrame({"grade": col}))
    feature = spec.features[0]
    assert isinstance(feature, CategoricalFeature)
    assert feature.values == ("low", "mid", "high")
    assert spec.sample(100, seed=0)["grade"].dtype == "category"


# ---------------------------------------------------------------------- edge cases


def test_edge_cases_hold_extremes_and_tail_quantiles(spec: FeatureSpec, reference: pd.DataFrame) -> None:
    cases = spec.edge_cases()
    assert list(cases.columns) == spec.feature_names
    assert cases.index.name == "case"
    assert len(cases) == 5 + 2 * len(spec)
    for column in CONTINUOUS:
        ref = reference[column]
        assert cases.loc["all=min", column] == pytest.approx(ref.min())
        assert cases.loc["all=max", column] == pytest.approx(ref.max())
        assert cases.loc["all=q0.001", column] == pytest.approx(np.quantile(ref, 0.001), rel=1e-6)
        assert cases.loc["all=q0.999", column] == pytest.approx(np.quantile(ref, 0.999), rel=1e-6)
        assert cases.loc[f"{column}=max", column] == pytest.approx(ref.max())
        others = [c for c in CONTINUOUS if c != column]
        for other in others:
            assert cases.loc[f"{column}=max", other] == pytest.approx(np.median(reference[other]), rel=1e-3)
    assert cases.loc["all=min", "plan"] == "basic"
    assert cases.loc["all=max", "plan"] == "premium"
    assert cases.loc["visits=max", "visits"] == reference["visits"].max()
    assert cases.dtypes.to_dict() == reference.dtypes.to_dict()


# ---------------------------------------------------------------------- JSON


def test_json_round_trip_gives_equal_spec_and_identical_samples(spec: FeatureSpec, tmp_path: Path) -> None:
    path = spec.to_json(tmp_path / "sub" / "feature_spec.json")
    loaded = FeatureSpec.from_json(path)
    assert loaded == spec
    assert loaded.feature_names == spec.feature_names
    pd.testing.assert_frame_equal(loaded.sample(500, seed=11), spec.sample(500, seed=11))
    doc = json.loads(path.read_text())
    assert doc["version"] == 1
    assert doc["n_reference_rows"] == 20_000
    assert [f["name"] for f in doc["features"]] == spec.feature_names
    assert len(doc["correlation"]) == len(spec)
    assert sorted(p.name for p in path.parent.iterdir()) == ["feature_spec.json"]


def test_to_json_replaces_an_existing_file(spec: FeatureSpec, tmp_path: Path) -> None:
    path = tmp_path / "spec.json"
    path.write_text("old")
    spec.to_json(path)
    assert FeatureSpec.from_json(path) == spec


def test_atomic_write_keeps_old_file_when_writer_fails(tmp_path: Path) -> None:
    path = tmp_path / "out.json"
    path.write_text("old content")

    def broken(tmp: Path) -> None:
        tmp.write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write(path, broken)
    assert path.read_text() == "old content"
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


@settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    values=st.lists(
        st.tuples(
            st.floats(-1e6, 1e6, allow_nan=False),
            st.integers(-1000, 1000),
            st.sampled_from(["a", "b", "c"]),
        ),
        min_size=1,
        max_size=60,
    )
)
def test_any_fitted_spec_round_trips_through_json(values: list[tuple[float, int, str]]) -> None:
    frame = pd.DataFrame(values, columns=["x", "n", "s"])
    spec = FeatureSpec.fit(frame)
    doc = json.loads(json.dumps(spec.to_dict(), allow_nan=False))
    again = FeatureSpec.from_dict(doc)
    assert again == spec
    drawn = again.sample(20, seed=0)
    assert drawn.dtypes.to_dict() == frame.dtypes.to_dict()
    assert drawn["x"].between(frame["x"].min(), frame["x"].max()).all()
    assert set(drawn["s"]) <= set(frame["s"])


# ---------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "frame",
    [pd.DataFrame(), pd.DataFrame({"x": pd.Series([], dtype=float)})],
    ids=["no-columns", "no-rows"],
)
def test_fit_rejects_empty_frame(frame: pd.DataFrame) -> None:
    with pytest.raises(EmptyReferenceError, match="empty"):
        FeatureSpec.fit(frame)


def test_fit_rejects_non_dataframe() -> None:
    with pytest.raises(EmptyReferenceError, match="DataFrame"):
        FeatureSpec.fit([[1, 2]])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (pd.DataFrame({"ok": [1.0, 2.0], "gone": [np.nan, np.nan]}), "'gone' has only missing values"),
        (pd.DataFrame({"x": [1.0, np.inf, 2.0]}), "'x' holds infinite values"),
        (pd.DataFrame({"id": [f"user-{i}" for i in range(500)]}), "'id' is non-numeric with 500 distinct"),
        (pd.DataFrame({"when": pd.date_range("2024-01-01", periods=3)}), "'when' has unsupported dtype"),
        (pd.DataFrame({"blob": [{"a": 1}, {"b": 2}]}), "'blob' holds values of type"),
        (pd.DataFrame([[1.0, 2.0]], columns=["a", "a"]), "duplicate column names"),
        (pd.DataFrame({0: [1.0, 2.0]}), "column names must be non-empty strings"),
    ],
    ids=["nan-only", "infinite", "too-many-levels", "datetime", "dicts", "duplicate-names", "int-name"],
)
def test_fit_rejects_unsupported_columns_with_a_clear_message(frame: pd.DataFrame, message: str) -> None:
    with pytest.raises(UnsupportedColumnError, match=message) as info:
        FeatureSpec.fit(frame)
    assert isinstance(info.value, ModelgateError)
    assert info.value.code == "unsupported_column"


@pytest.mark.parametrize("n", [0, -5, 2.5, True, "10", 10**9])
def test_sample_rejects_bad_row_counts(spec: FeatureSpec, n: object) -> None:
    with pytest.raises(InvalidSampleSizeError, match="number of rows"):
        spec.sample(n, seed=0)  # type: ignore[arg-type]


@pytest.mark.parametrize("seed", [-1, 1.5, None])
def test_sample_rejects_bad_seeds(spec: FeatureSpec, seed: object) -> None:
    with pytest.raises(InvalidSampleSizeError, match="seed"):
        spec.sample(10, seed=seed)  # type: ignore[arg-type]


def test_from_json_reports_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InvalidSpecError, match="not found"):
        FeatureSpec.from_json(tmp_path / "nope.json")


def test_from_json_reports_invalid_json(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text("{not json")
    with pytest.raises(InvalidSpecError, match="not valid JSON"):
        FeatureSpec.from_json(path)


def test_from_json_reports_wrong_version(spec: FeatureSpec, tmp_path: Path) -> None:
    doc = spec.to_dict()
    doc["version"] = 2
    path = tmp_path / "v2.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(UnsupportedSpecVersionError, match="version 2 is not supported") as info:
        FeatureSpec.from_json(path)
    assert str(path) in info.value.message


def _broken(spec: FeatureSpec, change: str) -> dict:
    doc = json.loads(json.dumps(spec.to_dict()))
    if change == "no-version":
        del doc["version"]
    elif change == "no-features":
        doc["features"] = []
    elif change == "decreasing-quantiles":
        doc["features"][0]["quantiles"] = doc["features"][0]["quantiles"][::-1]
    elif change == "bad-kind":
        doc["features"][1]["kind"] = "gaussian"
    elif change == "bad-frequencies":
        doc["features"][3]["frequencies"] = [0.9, 0.9]
    elif change == "wrong-shape":
        doc["correlation"] = doc["correlation"][:-1]
    elif change == "not-psd":
        d = len(doc["features"])
        doc["correlation"] = [[1.0 if i == j else -0.9 for j in range(d)] for i in range(d)]
    elif change == "duplicate-names":
        doc["features"][1]["name"] = doc["features"][0]["name"]
    elif change == "nan-quantile":
        doc["features"][0]["quantiles"][3] = None
    elif change == "bad-dtype":
        doc["features"][0]["dtype"] = "float-ish"
    return doc


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("no-version", "no 'version'"),
        ("no-features", "non-empty list"),
        ("decreasing-quantiles", "non-decreasing"),
        ("bad-kind", "'kind' must be"),
        ("bad-frequencies", "sum to 1"),
        ("wrong-shape", "7x7 matrix"),
        ("not-psd", "positive semi-definite"),
        ("duplicate-names", "duplicate feature names"),
        ("nan-quantile", "finite number"),
        ("bad-dtype", "unknown dtype"),
    ],
)
def test_from_dict_rejects_schema_violations(spec: FeatureSpec, change: str, message: str) -> None:
    with pytest.raises(InvalidSpecError, match=message):
        FeatureSpec.from_dict(_broken(spec, change))
