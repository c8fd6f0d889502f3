"""Fixtures of the batch-job tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from batch_support import make_classifier_onnx


@pytest.fixture
def classifier(tmp_path: Path) -> Path:
    """A 4-feature classifier with ``label`` and ``probabilities`` outputs."""
    return make_classifier_onnx(tmp_path / "models" / "clf.onnx")
