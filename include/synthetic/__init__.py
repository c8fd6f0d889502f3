"""Synthetic data: feature specs (marginals + Gaussian copula) fitted from reference data, and samplers.

Public API::

    spec = FeatureSpec.fit(reference_df)
    spec.to_json("feature_spec.json")
    spec = FeatureSpec.from_json("feature_spec.json")
    frame = spec.sample(10_000, seed=7)
    cases = spec.edge_cases()
"""

from __future__ import annotations

from include.synthetic.errors import (
    EmptyReferenceError,
    InvalidSampleSizeError,
    InvalidSpecError,
    SyntheticError,
    UnsupportedColumnError,
    UnsupportedSpecVersionError,
)
from include.synthetic.spec import (
    SCHEMA_VERSION,
    CategoricalFeature,
    Feature,
    FeatureSpec,
    NumericFeature,
)

__all__ = [
    "SCHEMA_VERSION",
    "CategoricalFeature",
    "EmptyReferenceError",
    "Feature",
    "FeatureSpec",
    "InvalidSampleSizeError",
    "InvalidSpecError",
    "NumericFeature",
    "SyntheticError",
    "UnsupportedColumnError",
    "UnsupportedSpecVersionError",
]
