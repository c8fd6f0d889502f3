"""Demo models: two scikit-learn "churn" classifiers exported to ONNX, their data, and broken variants.

Public API::

    from modelgate_dev.demo import train_demo_models, make_bad_model
    artifacts = train_demo_models(Path(".local/demo/models"), seed=0)
    artifacts.v1_model, artifacts.v2_model, artifacts.feature_spec, artifacts.metrics
    make_bad_model(path, "nan_output")

Heavy modules (scikit-learn, skl2onnx, onnxruntime) are imported inside the functions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from modelgate_dev.demo.errors import DemoError
from modelgate_dev.demo.models import (
    BAD_MODEL_KINDS,
    make_bad_model,
    make_nan_output_model,
    make_not_onnx_file,
    make_truncated_model,
    make_wrong_signature_model,
)

if TYPE_CHECKING:
    from modelgate_dev.demo.train import ARTIFACT_FILES, FEATURE_NAMES, DemoArtifacts, train_demo_models

_TRAIN_EXPORTS = ("ARTIFACT_FILES", "FEATURE_NAMES", "DemoArtifacts", "train_demo_models")


def __getattr__(name: str) -> Any:
    # Lazy: ``python -m modelgate_dev.demo.train`` must not find the module imported already.
    if name in _TRAIN_EXPORTS:
        from modelgate_dev.demo import train

        return getattr(train, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "ARTIFACT_FILES",
    "BAD_MODEL_KINDS",
    "FEATURE_NAMES",
    "DemoArtifacts",
    "DemoError",
    "make_bad_model",
    "make_nan_output_model",
    "make_not_onnx_file",
    "make_truncated_model",
    "make_wrong_signature_model",
    "train_demo_models",
]
