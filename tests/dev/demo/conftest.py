"""Fixtures for the demo-model tests: the demo files, trained once per module."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from modelgate_dev.demo.train import DemoArtifacts, train_demo_models


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoArtifacts:
    started = time.perf_counter()
    artifacts = train_demo_models(tmp_path_factory.mktemp("demo") / "models", seed=0)
    print(f"train_demo_models took {time.perf_counter() - started:.1f}s")
    return artifacts


@pytest.fixture
def demo_dir(demo: DemoArtifacts) -> Path:
    return demo.out_dir
