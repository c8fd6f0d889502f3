"""Fixtures for the A/B statistics engine tests: seeded random samples."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture
def rng() -> np.random.Generator:
    """A fixed-seed generator, so every test sees the same data on every run."""
    return np.random.default_rng(20261129)


@pytest.fixture
def two_samples(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Control and treatment per-unit values with unequal sizes and variances."""
    control = rng.normal(10.0, 2.0, 800)
    treatment = rng.normal(10.25, 2.6, 650)
    return control, treatment
