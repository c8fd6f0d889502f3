"""Fixtures of the regression unit tests: a small feature spec and predictions built in memory."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from include.regression.policy import Policy
from include.synthetic import FeatureSpec


@pytest.fixture(scope="session")
def spec() -> FeatureSpec:
    """Three numeric features, one with nulls in the reference."""
    rng = np.random.default_rng(0)
    ref = pd.DataFrame(
        {
            "a": rng.normal(0, 1, 2000).astype("float32"),
            "b": rng.uniform(-5, 5, 2000).astype("float32"),
            "c": np.where(rng.random(2000) < 0.1, np.nan, rng.normal(10, 2, 2000)).astype("float32"),
        }
    )
    return FeatureSpec.fit(ref)


@pytest.fixture
def policy() -> Policy:
    """The built-in defaults."""
    return Policy()
