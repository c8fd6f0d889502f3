"""Fixtures of the analytics engine tests: generated events in the router's layout."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

# the A/B test helpers (experiment documents, the Python reference reduction) live beside the A/B tests
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "abtest"))


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Two days of events of 2,000 units with outcomes and covariates."""
    from ab_support import START

    from modelgate_dev.abtest.generate import Population, generate

    out = tmp_path_factory.mktemp("gen")
    pop = Population(n_units=2000, variants={"a": 1, "b": 1}, lifts={"b": 0.3}, seed=11)
    return generate(pop, out, START, days=2, chunk_events=2000)
