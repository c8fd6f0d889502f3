"""The great-expectations suites from validation/ catch what they should, on small frames."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from include.regression import expectations as ex
from include.regression.errors import SuiteError
from include.regression.pipeline import synthetic_frame
from include.regression.policy import Policy
from include.regression.scoring import Predictions
from include.synthetic import FeatureSpec


@pytest.fixture(scope="module")
def input_suite(spec: FeatureSpec) -> dict:
    return ex.input_suite(ex.load_template("regression_inputs.suite.json"), spec, min_rows=50)


@pytest.fixture(scope="module")
def good_inputs(spec: FeatureSpec) -> pd.DataFrame:
    frame = synthetic_frame(spec, Policy.from_dict({"synthetic": {"rows": 200}}))
    return frame[spec.feature_names]


def test_synthetic_inputs_with_edge_cases_pass_the_input_suite(
    spec: FeatureSpec, input_suite: dict, good_inputs: pd.DataFrame
) -> None:
    frame = synthetic_frame(spec, Policy.from_dict({"synthetic": {"rows": 200}}))
    assert "c=null" in set(frame["case"]), "a feature with reference nulls gets a null edge case"
    assert "a=max" in set(frame["case"]) and "all=min" in set(frame["case"])
    res = ex.validate(good_inputs, input_suite)
    assert res.success, res.failed
    assert res.evaluated == 2 + 2 * 3
    assert "<html" in res.html.lower() and res.result["success"] is True


def test_input_suite_catches_out_of_range_nulls_and_wrong_schema(
    input_suite: dict, good_inputs: pd.DataFrame
) -> None:
    bad = good_inputs.copy()
    bad.loc[0, "a"] = 1e6
    bad.loc[1, "b"] = np.nan
    res = ex.validate(bad, input_suite)
    assert not res.success
    assert "expect_column_values_to_be_between(a): 1 unexpected" in res.failed
    assert "expect_column_values_to_not_be_null(b): 1 unexpected" in res.failed
    swapped = ex.validate(good_inputs[["b", "a", "c"]], input_suite)
    assert any(f.startswith("expect_table_columns_to_match_ordered_list") for f in swapped.failed)


def _outputs(probs: list[list[float]], labels: list[int]) -> pd.DataFrame:
    return Predictions(np.array(labels), np.array(probs, dtype=np.float64)).frame()


@pytest.fixture(scope="module")
def output_suite() -> dict:
    return ex.output_suite(ex.load_template("regression_outputs.suite.json"), 2, [0, 1], 1e-4)


def test_output_suite_passes_valid_probabilities(output_suite: dict) -> None:
    assert ex.validate(_outputs([[0.2, 0.8], [1.0, 0.0]], [1, 0]), output_suite).success


@pytest.mark.parametrize(
    ("probs", "labels", "failed"),
    [
        ([[0.2, 0.8], [np.nan, np.nan]], [1, 0], "expect_column_values_to_not_be_null(probability_1)"),
        ([[1.5, -0.5], [0.5, 0.5]], [0, 0], "expect_column_values_to_be_between(probability_0)"),
        ([[0.3, 0.3], [0.5, 0.5]], [0, 0], "expect_column_values_to_be_between(probability_sum)"),
        ([[0.2, 0.8], [0.5, 0.5]], [1, 7], "expect_column_values_to_be_in_set(label)"),
    ],
)
def test_output_suite_catches_nan_out_of_range_bad_sums_and_unknown_classes(
    output_suite: dict, probs: list, labels: list, failed: str
) -> None:
    res = ex.validate(_outputs(probs, labels), output_suite)
    assert not res.success
    assert any(f.startswith(failed) for f in res.failed), res.failed


def test_templates_with_unknown_placeholders_or_missing_files_are_clear_errors(
    tmp_path, spec: FeatureSpec
) -> None:
    (tmp_path / "t.json").write_text(
        '{"name": "t", "expectations": [{"type": "x", "kwargs": {"v": "{nope}"}}]}'
    )
    with pytest.raises(SuiteError, match="unknown placeholder '\\{nope\\}'"):
        ex.input_suite(ex.load_template("t.json", tmp_path), spec, 1)
    with pytest.raises(SuiteError, match="cannot read"):
        ex.load_template("missing.json", tmp_path)
    (tmp_path / "bad.json").write_text(
        '{"name": "t", "expectations": [{"type": "expect_no_such_thing", "kwargs": {}}]}'
    )
    with pytest.raises(SuiteError, match="not a valid expectation suite"):
        ex.validate(pd.DataFrame({"a": [1]}), ex.load_template("bad.json", tmp_path))
