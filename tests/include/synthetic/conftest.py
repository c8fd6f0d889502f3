"""Fixtures for the synthetic-data tests: a reference frame with known dependence."""

from __future__ import annotations

import pandas as pd
import pytest
from synthetic_reference import make_reference

from include.synthetic import FeatureSpec


@pytest.fixture(scope="module")
def reference() -> pd.DataFrame:
    return make_reference()


@pytest.fixture(scope="module")
def spec(reference: pd.DataFrame) -> FeatureSpec:
    return FeatureSpec.fit(reference)


@pytest.fixture(scope="module")
def sample(spec: FeatureSpec) -> pd.DataFrame:
    return spec.sample(20_000, seed=3)
