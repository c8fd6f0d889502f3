"""Fixtures of the traffic tests: a 30-feature spec and a real router with two demo-shaped models."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from serving.conftest import Router, start_router
from support import stop

from include.synthetic.spec import FeatureSpec
from modelgate_dev.demo.models import build_linear_model


@pytest.fixture(scope="module")
def spec() -> FeatureSpec:
    """A feature spec of 30 correlated numeric columns, one with missing values."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, 30)) @ (np.eye(30) + 0.1)
    frame = pd.DataFrame(x, columns=[f"f{i}" for i in range(30)])
    frame.loc[::10, "f3"] = np.nan
    return FeatureSpec.fit(frame)


@pytest.fixture
def router(tmp_path: Path) -> Iterator[Router]:
    """A router serving ``churn`` with champion (80 %) and canary (20 %) local models."""
    import onnx

    paths = {}
    for name, seed in (("champion", 1), ("canary", 2)):
        paths[name] = tmp_path / f"{name}.onnx"
        onnx.save(build_linear_model(30, seed=seed, graph_name=name), str(paths[name]))
    routes = {
        "models": {
            "churn": {
                "variants": [
                    {"name": "champion", "uri": str(paths["champion"]), "weight_bp": 8000},
                    {"name": "canary", "uri": str(paths["canary"]), "weight_bp": 2000},
                ]
            }
        }
    }
    r = start_router(tmp_path / "router", routes)
    yield r
    stop(r.proc)
