"""The features of a spec: numeric and categorical marginals, and reading them from JSON.

A numeric feature is empirical quantile knots with linear interpolation between them; a categorical
feature is level frequencies. ``feature_from_dict`` validates one feature of a spec document and says
what is wrong with it (``docs/synthetic.md``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from include.synthetic.errors import InvalidSpecError

TAIL_PROBABILITIES = (0.001, 0.005, 0.995, 0.999)
"""Extra quantile knots in the tails, on top of the evenly spaced ones."""

JSONScalar = str | int | float | bool
"""A value a categorical level may take (what JSON can hold)."""

NumericKind = Literal["continuous", "integer"]


def quantile_probabilities(n_quantiles: int = 101) -> np.ndarray:
    """Return the probability levels of the quantile knots.

    Args:
        n_quantiles: number of evenly spaced levels from 0 to 1 (at least 2); the levels of
            :data:`TAIL_PROBABILITIES` are added to them.

    Returns:
        Sorted unique probabilities, starting at 0 and ending at 1.

    Raises:
        SyntheticError: when ``n_quantiles`` is below 2.
    """
    if isinstance(n_quantiles, bool) or not isinstance(n_quantiles, int) or n_quantiles < 2:
        raise InvalidSpecError(f"n_quantiles must be an integer >= 2, got {n_quantiles!r}")
    levels = np.concatenate([np.linspace(0.0, 1.0, n_quantiles), np.asarray(TAIL_PROBABILITIES)])
    return np.unique(np.round(levels, 12))


@dataclass(frozen=True)
class NumericFeature:
    """Marginal of a numeric column: quantile knots, linearly interpolated.

    Attributes:
        name: column name.
        kind: ``"continuous"`` or ``"integer"`` (sampled values are rounded to integers).
        dtype: pandas dtype of the reference column, restored on sampling.
        null_fraction: share of missing values in the reference column.
        probabilities: probability levels of the knots, from 0 to 1, strictly increasing.
        quantiles: the column's quantiles at those levels (first = min, last = max).
        mean: mean of the non-missing reference values.
        std: standard deviation of the non-missing reference values.
    """

    name: str
    kind: NumericKind
    dtype: str
    null_fraction: float
    probabilities: tuple[float, ...]
    quantiles: tuple[float, ...]
    mean: float
    std: float

    @property
    def min(self) -> float:
        """Smallest reference value."""
        return self.quantiles[0]

    @property
    def max(self) -> float:
        """Largest reference value."""
        return self.quantiles[-1]

    def values_at(self, u: np.ndarray) -> np.ndarray:
        """Map uniform levels ``u`` in [0, 1] to values through the interpolated quantile function.

        Args:
            u: probability levels.

        Returns:
            Float array of values (integral for integer features).
        """
        x = np.interp(u, np.asarray(self.probabilities), np.asarray(self.quantiles))
        if self.kind == "integer":
            x = np.rint(x)
        return x

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form of this feature."""
        return {
            "name": self.name,
            "kind": self.kind,
            "dtype": self.dtype,
            "null_fraction": self.null_fraction,
            "min": self.min,
            "max": self.max,
            "mean": self.mean,
            "std": self.std,
            "probabilities": list(self.probabilities),
            "quantiles": list(self.quantiles),
        }


@dataclass(frozen=True)
class CategoricalFeature:
    """Marginal of a column with few distinct values: the levels in a fixed order and their frequencies.

    The order of ``values`` is the order used by the copula (numeric levels ascending), so
    correlations with other columns carry over.

    Attributes:
        name: column name.
        dtype: pandas dtype of the reference column, restored on sampling.
        null_fraction: share of missing values in the reference column.
        values: the distinct non-missing values (JSON scalars).
        frequencies: their shares among non-missing values (sum to 1).
    """

    name: str
    dtype: str
    null_fraction: float
    values: tuple[JSONScalar, ...]
    frequencies: tuple[float, ...]

    kind: Literal["categorical"] = "categorical"

    def codes_at(self, u: np.ndarray) -> np.ndarray:
        """Map uniform levels ``u`` in [0, 1] to indices into :attr:`values` by the inverse CDF.

        Args:
            u: probability levels.

        Returns:
            Integer array of level indices.
        """
        cumulative = np.cumsum(np.asarray(self.frequencies))
        cumulative[-1] = 1.0
        idx = np.searchsorted(cumulative, u, side="right")
        return np.minimum(idx, len(self.values) - 1)

    def values_at(self, u: np.ndarray) -> np.ndarray:
        """Map uniform levels ``u`` to level values (object array).

        Args:
            u: probability levels.

        Returns:
            Object array of values.
        """
        levels = np.empty(len(self.values), dtype=object)
        levels[:] = list(self.values)
        return levels[self.codes_at(u)]

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form of this feature."""
        return {
            "name": self.name,
            "kind": self.kind,
            "dtype": self.dtype,
            "null_fraction": self.null_fraction,
            "values": list(self.values),
            "frequencies": list(self.frequencies),
        }


Feature = NumericFeature | CategoricalFeature


def json_scalar(value: Any) -> JSONScalar | None:
    """Return ``value`` as a plain JSON scalar, or None when it is not one."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return value
    return None


def feature_from_dict(item: Any, i: int) -> Feature:
    if not isinstance(item, Mapping):
        raise InvalidSpecError(f"features[{i}] must be an object, got {type(item).__name__}")
    name = item.get("name")
    if not isinstance(name, str) or not name:
        raise InvalidSpecError(f"features[{i}] needs a non-empty string 'name'")
    where = f"features[{i}] ({name!r})"
    kind = item.get("kind")
    dtype = item.get("dtype")
    if not isinstance(dtype, str):
        raise InvalidSpecError(f"{where}: 'dtype' must be a string")
    try:
        pd.api.types.pandas_dtype(dtype)
    except TypeError as e:
        raise InvalidSpecError(f"{where}: unknown dtype {dtype!r}") from e
    null_fraction = _number(item, "null_fraction", where)
    if not 0.0 <= null_fraction < 1.0:
        raise InvalidSpecError(f"{where}: 'null_fraction' must be in [0, 1), got {null_fraction}")
    if kind in ("continuous", "integer"):
        return _numeric_from_dict(item, name, kind, dtype, null_fraction, where)
    if kind == "categorical":
        return _categorical_from_dict(item, name, dtype, null_fraction, where)
    raise InvalidSpecError(f"{where}: 'kind' must be 'continuous', 'integer' or 'categorical', got {kind!r}")


def _numeric_from_dict(
    item: Mapping[str, Any], name: str, kind: NumericKind, dtype: str, null_fraction: float, where: str
) -> NumericFeature:
    probabilities = _number_list(item, "probabilities", where)
    quantiles = _number_list(item, "quantiles", where)
    if len(probabilities) < 2 or len(probabilities) != len(quantiles):
        raise InvalidSpecError(
            f"{where}: 'probabilities' and 'quantiles' must have the same length (at least 2)"
        )
    p = np.asarray(probabilities)
    if p[0] != 0.0 or p[-1] != 1.0 or np.any(np.diff(p) <= 0):
        raise InvalidSpecError(f"{where}: 'probabilities' must increase strictly from 0 to 1")
    if np.any(np.diff(np.asarray(quantiles)) < 0):
        raise InvalidSpecError(f"{where}: 'quantiles' must be non-decreasing")
    return NumericFeature(
        name=name,
        kind=kind,
        dtype=dtype,
        null_fraction=null_fraction,
        probabilities=tuple(probabilities),
        quantiles=tuple(quantiles),
        mean=_number(item, "mean", where),
        std=_number(item, "std", where),
    )


def _categorical_from_dict(
    item: Mapping[str, Any], name: str, dtype: str, null_fraction: float, where: str
) -> CategoricalFeature:
    values = item.get("values")
    if not isinstance(values, list) or not values or any(json_scalar(v) is None for v in values):
        raise InvalidSpecError(f"{where}: 'values' must be a non-empty list of strings, numbers or booleans")
    if len({(type(v), v) for v in values}) != len(values):
        raise InvalidSpecError(f"{where}: 'values' has duplicates")
    frequencies = _number_list(item, "frequencies", where)
    if len(frequencies) != len(values):
        raise InvalidSpecError(f"{where}: 'frequencies' must have one entry per value")
    if min(frequencies) < 0 or abs(sum(frequencies) - 1.0) > 1e-6:
        raise InvalidSpecError(f"{where}: 'frequencies' must be non-negative and sum to 1")
    return CategoricalFeature(
        name=name,
        dtype=dtype,
        null_fraction=null_fraction,
        values=tuple(values),
        frequencies=tuple(frequencies),
    )


def _number(item: Mapping[str, Any], key: str, where: str) -> float:
    value = item.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidSpecError(f"{where}: {key!r} must be a finite number, got {value!r}")
    return float(value)


def _number_list(item: Mapping[str, Any], key: str, where: str) -> list[float]:
    value = item.get(key)
    if not isinstance(value, list):
        raise InvalidSpecError(f"{where}: {key!r} must be a list of numbers")
    return [_number({key: v}, key, where) for v in value]


def check_correlation(raw: np.ndarray | Sequence[Sequence[float]], d: int) -> np.ndarray:
    try:
        corr = np.array(raw, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise InvalidSpecError(f"'correlation' must be a {d}x{d} matrix of numbers") from e
    if corr.shape != (d, d):
        raise InvalidSpecError(f"'correlation' must be a {d}x{d} matrix, got shape {corr.shape}")
    if not np.isfinite(corr).all():
        raise InvalidSpecError("'correlation' holds non-finite numbers")
    if not np.allclose(corr, corr.T, atol=1e-9) or not np.allclose(np.diag(corr), 1.0, atol=1e-9):
        raise InvalidSpecError("'correlation' must be symmetric with ones on the diagonal")
    if np.abs(corr).max() > 1.0 + 1e-9:
        raise InvalidSpecError("'correlation' entries must lie in [-1, 1]")
    if d and np.linalg.eigvalsh(corr).min() < -1e-6:
        raise InvalidSpecError("'correlation' is not positive semi-definite")
    return corr
