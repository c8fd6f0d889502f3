"""Fitting a spec from a reference frame: one marginal per column, and the copula's correlation."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from include.synthetic.errors import UnsupportedColumnError
from include.synthetic.features import CategoricalFeature, Feature, NumericFeature, json_scalar

_EIGEN_FLOOR = 1e-10


def fit_column(
    name: str,
    column: pd.Series,
    probabilities: np.ndarray,
    categorical_max_levels: int,
    max_categories: int,
) -> tuple[Feature, np.ndarray]:
    """Fit one column; return its feature and its ordinal values (NaN where missing) for the copula."""
    dtype = column.dtype
    if (
        pd.api.types.is_datetime64_any_dtype(dtype)
        or pd.api.types.is_timedelta64_dtype(dtype)
        or pd.api.types.is_complex_dtype(dtype)
        or isinstance(dtype, pd.PeriodDtype | pd.IntervalDtype)
    ):
        raise UnsupportedColumnError(f"column {name!r} has unsupported dtype {dtype}")
    mask = column.notna().to_numpy()
    n_valid = int(mask.sum())
    if n_valid == 0:
        raise UnsupportedColumnError(f"column {name!r} has only missing values (NaN); drop it or fill it")
    null_fraction = float(1.0 - n_valid / len(column))
    valid = column[mask]
    is_numeric = pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype)
    if is_numeric:
        values = valid.to_numpy(dtype=np.float64)
        if not np.isfinite(values).all():
            raise UnsupportedColumnError(f"column {name!r} holds infinite values")
        if len(np.unique(values)) <= categorical_max_levels:
            integral = pd.api.types.is_integer_dtype(dtype)
            levels = [int(v) if integral else float(v) for v in np.unique(values)]
            return _categorical(name, str(dtype), null_fraction, valid.tolist(), levels, mask)
        integral = pd.api.types.is_integer_dtype(dtype) or bool(np.all(values == np.round(values)))
        quantiles = np.quantile(values, probabilities)
        if integral:
            quantiles = np.rint(quantiles)
        feature = NumericFeature(
            name=name,
            kind="integer" if integral else "continuous",
            dtype=str(dtype),
            null_fraction=null_fraction,
            probabilities=tuple(float(p) for p in probabilities),
            quantiles=tuple(float(q) for q in np.maximum.accumulate(quantiles)),
            mean=float(values.mean()),
            std=float(values.std()),
        )
        ordinal = np.full(len(column), np.nan)
        ordinal[mask] = values
        return feature, ordinal
    return _fit_non_numeric(name, valid, dtype, null_fraction, mask, max_categories)


def _fit_non_numeric(
    name: str,
    valid: pd.Series,
    dtype: Any,
    null_fraction: float,
    mask: np.ndarray,
    max_categories: int,
) -> tuple[Feature, np.ndarray]:
    raw = [json_scalar(v) for v in valid.tolist()]
    if any(v is None for v in raw):
        kinds = sorted({type(v).__name__ for v in valid.tolist() if json_scalar(v) is None})
        raise UnsupportedColumnError(
            f"column {name!r} holds values of type {kinds}; only text, numbers and booleans can be categorical"
        )
    distinct = set(raw)
    if len(distinct) > max_categories:
        raise UnsupportedColumnError(
            f"column {name!r} is non-numeric with {len(distinct)} distinct values, more than "
            f"max_categories={max_categories}, so it cannot be treated as categorical"
        )
    if isinstance(dtype, pd.CategoricalDtype):
        levels = [json_scalar(c) for c in dtype.categories if json_scalar(c) in distinct]
    else:
        levels = sorted(distinct, key=lambda v: (type(v).__name__, v))
    return _categorical(name, str(dtype), null_fraction, raw, levels, mask)


def _categorical(
    name: str,
    dtype: str,
    null_fraction: float,
    valid_values: list[Any],
    levels: list[Any],
    mask: np.ndarray,
) -> tuple[Feature, np.ndarray]:
    index = {v: i for i, v in enumerate(levels)}
    codes = np.array([index[json_scalar(v)] for v in valid_values], dtype=np.float64)
    counts = np.bincount(codes.astype(np.int64), minlength=len(levels)).astype(np.float64)
    feature = CategoricalFeature(
        name=name,
        dtype=dtype,
        null_fraction=null_fraction,
        values=tuple(levels),
        frequencies=tuple(float(f) for f in counts / counts.sum()),
    )
    ordinal = np.full(len(mask), np.nan)
    ordinal[mask] = codes
    return feature, ordinal


def copula_correlation(ordinals: list[np.ndarray]) -> np.ndarray:
    """Estimate the latent correlation of the Gaussian copula from the columns' ordinal values.

    Each column's value ``k`` occupies the block ``[F(k-), F(k)]`` of its empirical CDF; its
    normal score is the mean of a standard normal over that block, ``E[Z | block]``. For a
    continuous column these are the usual normal scores; for a tied (discrete) column the
    covariance with another column's scores is the latent correlation times the product of the
    score variances, so dividing by those variances undoes the attenuation ties cause (exact for
    a discrete/continuous pair, first-order for two discrete columns). Missing values are left
    out pair by pair. The result is repaired to the nearest valid correlation matrix.
    """
    n_rows = len(ordinals[0])
    scores = np.full((n_rows, len(ordinals)), np.nan)
    variances = np.ones(len(ordinals))
    for j, x in enumerate(ordinals):
        mask = ~np.isnan(x)
        levels, inverse, counts = np.unique(x[mask], return_inverse=True, return_counts=True)
        upper = np.cumsum(counts) / counts.sum()
        lower = np.concatenate([[0.0], upper[:-1]])
        upper[-1] = 1.0
        block_means = (stats.norm.pdf(stats.norm.ppf(lower)) - stats.norm.pdf(stats.norm.ppf(upper))) / (
            upper - lower
        )
        scores[mask, j] = block_means[inverse]
        variances[j] = float(np.sum(counts * block_means**2) / counts.sum()) if len(levels) > 1 else 0.0
    with np.errstate(invalid="ignore", divide="ignore"):
        cov = pd.DataFrame(scores).cov(min_periods=2).to_numpy()
        corr = cov / np.outer(variances, variances)
    corr = np.clip(np.nan_to_num(corr, nan=0.0, posinf=0.0, neginf=0.0), -1.0, 1.0)
    np.fill_diagonal(corr, 1.0)
    return _nearest_correlation(corr)


def _nearest_correlation(corr: np.ndarray) -> np.ndarray:
    """Clip negative eigenvalues and rescale to a unit diagonal (a positive semi-definite correlation)."""
    corr = (corr + corr.T) / 2.0
    values, vectors = np.linalg.eigh(corr)
    if values.min() >= _EIGEN_FLOOR:
        out = corr.copy()
    else:
        fixed = (vectors * np.clip(values, _EIGEN_FLOOR, None)) @ vectors.T
        scale = np.sqrt(np.diag(fixed))
        out = fixed / np.outer(scale, scale)
        out = (out + out.T) / 2.0
    out = np.clip(out, -1.0, 1.0)
    np.fill_diagonal(out, 1.0)
    return out
