"""Errors of the synthetic-data package."""

from __future__ import annotations

from include.errors import ModelgateError


class SyntheticError(ModelgateError):
    """Raised when a feature spec cannot be fitted, loaded, saved or sampled."""

    code = "synthetic_error"


class EmptyReferenceError(SyntheticError):
    """Raised when the reference DataFrame has no rows or no columns."""

    code = "empty_reference"


class UnsupportedColumnError(SyntheticError):
    """Raised when a reference column cannot be described (all NaN, infinite, wrong type, too many levels)."""

    code = "unsupported_column"


class InvalidSpecError(SyntheticError):
    """Raised when a feature spec file or dict is missing, not JSON, or breaks the schema."""

    code = "invalid_feature_spec"


class UnsupportedSpecVersionError(InvalidSpecError):
    """Raised when a feature spec was written with a schema version this code does not read."""

    code = "unsupported_feature_spec_version"


class InvalidSampleSizeError(SyntheticError):
    """Raised when a sample size or seed is not a positive (resp. non-negative) integer."""

    code = "invalid_sample_size"
