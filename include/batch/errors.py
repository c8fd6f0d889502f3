"""Errors raised by the batch-inference job; each message names the file and the problem."""

from __future__ import annotations

from include.errors import ModelgateError


class BatchError(ModelgateError):
    """Raised when a batch-inference run cannot be carried out."""

    code = "batch_error"


class BatchInputError(BatchError):
    """Raised when an input Parquet file cannot be scored (unreadable, empty, missing or mistyped columns)."""

    code = "bad_input"


class FeatureMismatchError(BatchInputError):
    """Raised when the input's feature columns do not match the model's input signature."""

    code = "feature_mismatch"


class BatchModelError(BatchError):
    """Raised when the model cannot be loaded or has a signature the job does not support."""

    code = "bad_model"


class ProviderUnavailableError(BatchError):
    """Raised when an execution provider is requested that this onnxruntime build does not offer."""

    code = "provider_unavailable"


class BatchOutputError(BatchError):
    """Raised when the output folder cannot be written or holds something in the way."""

    code = "bad_output"
