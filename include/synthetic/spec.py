"""Feature spec: per-feature marginals plus a Gaussian copula, fitted from a reference DataFrame.

A :class:`FeatureSpec` describes each column of a reference frame by its marginal distribution
(empirical quantile knots with linear interpolation for numeric columns, level frequencies for
categorical ones) and the dependence between columns by the correlation matrix of normal scores
(a Gaussian copula). It samples new rows deterministically from a seed, lists edge cases for
regression tests, and is saved as versioned JSON (see ``docs/synthetic.md``).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import stats

from include.synthetic.errors import (
    EmptyReferenceError,
    InvalidSampleSizeError,
    InvalidSpecError,
    UnsupportedColumnError,
    UnsupportedSpecVersionError,
)
from include.synthetic.files import atomic_write

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
"""Version of the JSON layout written by :meth:`FeatureSpec.to_json`."""

TAIL_PROBABILITIES = (0.001, 0.005, 0.995, 0.999)
"""Extra quantile knots in the tails, on top of the evenly spaced ones."""

MAX_SAMPLE_ROWS = 10_000_000
"""Largest ``n`` accepted by :meth:`FeatureSpec.sample` (bounds memory)."""

_EIGEN_FLOOR = 1e-10
_JSONScalar = str | int | float | bool

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
    values: tuple[_JSONScalar, ...]
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


class FeatureSpec:
    """Marginals and Gaussian-copula correlation of a table of features, in a fixed column order.

    Build one with :meth:`fit` or :meth:`from_json`; the column order of the reference frame is
    kept everywhere (it is the model's input order).
    """

    def __init__(
        self,
        features: Sequence[Feature],
        correlation: np.ndarray | Sequence[Sequence[float]],
        n_reference_rows: int,
    ) -> None:
        """Create a spec from already validated parts (use :meth:`fit` or :meth:`from_dict`).

        Args:
            features: one marginal per column, in column order.
            correlation: correlation matrix of the normal scores, one row and column per feature.
            n_reference_rows: number of rows of the reference frame.

        Raises:
            InvalidSpecError: when the parts do not fit together.
        """
        self._features = tuple(features)
        self._correlation = _check_correlation(correlation, len(self._features))
        self._correlation.setflags(write=False)
        if (
            isinstance(n_reference_rows, bool)
            or not isinstance(n_reference_rows, int)
            or n_reference_rows < 1
        ):
            raise InvalidSpecError(f"n_reference_rows must be a positive integer, got {n_reference_rows!r}")
        self._n_reference_rows = n_reference_rows
        names = [f.name for f in self._features]
        if not names:
            raise InvalidSpecError("a feature spec needs at least one feature")
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise InvalidSpecError(f"duplicate feature names: {duplicates}")
        values, vectors = np.linalg.eigh(self._correlation)
        self._factor = vectors * np.sqrt(np.clip(values, 0.0, None))

    # ------------------------------------------------------------------ properties

    @property
    def features(self) -> tuple[Feature, ...]:
        """The marginals, in column order."""
        return self._features

    @property
    def feature_names(self) -> list[str]:
        """Column names in model input order."""
        return [f.name for f in self._features]

    @property
    def correlation(self) -> np.ndarray:
        """Correlation matrix of the normal scores (read-only)."""
        return self._correlation

    @property
    def n_reference_rows(self) -> int:
        """Number of rows of the frame the spec was fitted on."""
        return self._n_reference_rows

    def __len__(self) -> int:
        return len(self._features)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, FeatureSpec):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"FeatureSpec(features={self.feature_names!r}, n_reference_rows={self._n_reference_rows})"

    # ------------------------------------------------------------------ fitting

    @classmethod
    def fit(
        cls,
        df: pd.DataFrame,
        *,
        n_quantiles: int = 101,
        categorical_max_levels: int = 10,
        max_categories: int = 100,
    ) -> FeatureSpec:
        """Fit marginals and the copula correlation to a reference frame.

        Numeric columns with at most ``categorical_max_levels`` distinct values, boolean columns
        and text/category columns with at most ``max_categories`` distinct values become
        categorical features; other integer-valued columns become integer features; the rest
        continuous. Missing values are allowed (their share is kept), but not all-missing columns.

        Args:
            df: the reference frame; its column order is kept.
            n_quantiles: evenly spaced quantile knots per numeric feature (plus tail knots).
            categorical_max_levels: numeric columns with this many distinct values or fewer are
                treated as categorical.
            max_categories: most distinct values a non-numeric column may have.

        Returns:
            The fitted spec.

        Raises:
            EmptyReferenceError: when ``df`` has no rows or no columns.
            UnsupportedColumnError: for a column that is all missing, holds infinite values,
                has an unsupported type, or is non-numeric with too many distinct values.
            SyntheticError: when ``df`` is not a DataFrame or its column names are not unique strings.
        """
        if not isinstance(df, pd.DataFrame):
            raise EmptyReferenceError(f"reference data must be a pandas DataFrame, got {type(df).__name__}")
        if df.shape[0] == 0 or df.shape[1] == 0:
            raise EmptyReferenceError(
                f"reference DataFrame is empty ({df.shape[0]} rows, {df.shape[1]} columns); "
                "a feature spec needs at least one row and one column"
            )
        bad_names = [c for c in df.columns if not isinstance(c, str) or not c]
        if bad_names:
            raise UnsupportedColumnError(f"column names must be non-empty strings, got {bad_names[:5]!r}")
        if df.columns.has_duplicates:
            dupes = sorted(set(df.columns[df.columns.duplicated()]))
            raise UnsupportedColumnError(f"duplicate column names in reference DataFrame: {dupes}")
        probabilities = quantile_probabilities(n_quantiles)
        features: list[Feature] = []
        ordinals: list[np.ndarray] = []
        for name in df.columns:
            feature, ordinal = _fit_column(
                str(name), df[name], probabilities, categorical_max_levels, max_categories
            )
            features.append(feature)
            ordinals.append(ordinal)
        correlation = _copula_correlation(ordinals)
        spec = cls(features, correlation, int(df.shape[0]))
        log.info(
            "fitted feature spec on %d rows: %d features (%d categorical)",
            df.shape[0],
            len(features),
            sum(isinstance(f, CategoricalFeature) for f in features),
        )
        return spec

    # ------------------------------------------------------------------ sampling

    def sample(self, n: int, seed: int = 0) -> pd.DataFrame:
        """Draw ``n`` rows; the same ``seed`` always gives the identical frame.

        Args:
            n: number of rows, 1 to :data:`MAX_SAMPLE_ROWS`.
            seed: non-negative integer seed of the random generator.

        Returns:
            A DataFrame with the spec's columns in order and the reference dtypes.

        Raises:
            InvalidSampleSizeError: when ``n`` or ``seed`` is not a valid integer.
        """
        if isinstance(n, bool) or not isinstance(n, int | np.integer) or not 0 < n <= MAX_SAMPLE_ROWS:
            raise InvalidSampleSizeError(
                f"number of rows to sample must be an integer from 1 to {MAX_SAMPLE_ROWS}, got {n!r}"
            )
        if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
            raise InvalidSampleSizeError(f"seed must be a non-negative integer, got {seed!r}")
        rng = np.random.default_rng(int(seed))
        d = len(self._features)
        z = rng.standard_normal((int(n), d)) @ self._factor.T
        u = stats.norm.cdf(z)
        nulls = rng.random((int(n), d)) < np.array([f.null_fraction for f in self._features])
        columns = {f.name: _column(f, u[:, j], nulls[:, j]) for j, f in enumerate(self._features)}
        return pd.DataFrame(columns, columns=self.feature_names)

    def edge_cases(self) -> pd.DataFrame:
        """Return boundary rows for regression tests.

        Rows ``all=min``, ``all=q0.001``, ``all=median``, ``all=q0.999``, ``all=max`` set every
        feature to that level of its marginal; then for each feature, ``<name>=min`` and
        ``<name>=max`` set that feature to its extreme and every other one to its median.
        Categorical features use the first/last level in their order for min/max.

        Returns:
            A DataFrame with the spec's columns and dtypes, indexed by case label (index name ``case``).
        """
        d = len(self._features)
        levels = {"min": 0.0, "q0.001": 0.001, "median": 0.5, "q0.999": 0.999, "max": 1.0}
        labels: list[str] = []
        rows: list[np.ndarray] = []
        for label, p in levels.items():
            labels.append(f"all={label}")
            rows.append(np.full(d, p))
        for j, feature in enumerate(self._features):
            for label in ("min", "max"):
                row = np.full(d, 0.5)
                row[j] = levels[label]
                labels.append(f"{feature.name}={label}")
                rows.append(row)
        u = np.vstack(rows)
        no_nulls = np.zeros(len(rows), dtype=bool)
        columns = {f.name: _column(f, u[:, j], no_nulls) for j, f in enumerate(self._features)}
        frame = pd.DataFrame(columns, columns=self.feature_names)
        frame.index = pd.Index(labels, name="case")
        return frame

    # ------------------------------------------------------------------ JSON

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON document of this spec (schema version :data:`SCHEMA_VERSION`)."""
        return {
            "version": SCHEMA_VERSION,
            "copula": "gaussian",
            "n_reference_rows": self._n_reference_rows,
            "features": [f.to_dict() for f in self._features],
            "correlation": self._correlation.tolist(),
        }

    def to_json(self, path: Path | str) -> Path:
        """Write the spec as JSON, atomically (temporary file + ``os.replace``).

        Args:
            path: the file to write; its folder is created when missing.

        Returns:
            The path written.

        Raises:
            OSError: when the file cannot be written.
        """
        text = json.dumps(self.to_dict(), indent=1, allow_nan=False) + "\n"
        target = atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
        log.info("wrote feature spec (%d features) to %s", len(self._features), target)
        return target

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> FeatureSpec:
        """Build a spec from its JSON document, checking the schema.

        Args:
            doc: the parsed JSON document.

        Returns:
            The spec.

        Raises:
            UnsupportedSpecVersionError: when ``version`` is not :data:`SCHEMA_VERSION`.
            InvalidSpecError: when the document breaks the schema (the message says where).
        """
        if not isinstance(doc, Mapping):
            raise InvalidSpecError(f"feature spec must be a JSON object, got {type(doc).__name__}")
        if "version" not in doc:
            raise InvalidSpecError("feature spec has no 'version' field")
        version = doc["version"]
        if version != SCHEMA_VERSION or isinstance(version, bool):
            raise UnsupportedSpecVersionError(
                f"feature spec version {version!r} is not supported (this code reads version {SCHEMA_VERSION})"
            )
        copula = doc.get("copula", "gaussian")
        if copula != "gaussian":
            raise InvalidSpecError(f"feature spec copula {copula!r} is not supported (only 'gaussian')")
        for key in ("features", "correlation", "n_reference_rows"):
            if key not in doc:
                raise InvalidSpecError(f"feature spec has no {key!r} field")
        raw_features = doc["features"]
        if not isinstance(raw_features, list) or not raw_features:
            raise InvalidSpecError("feature spec 'features' must be a non-empty list")
        features = [_feature_from_dict(item, i) for i, item in enumerate(raw_features)]
        return cls(features, doc["correlation"], doc["n_reference_rows"])

    @classmethod
    def from_json(cls, path: Path | str) -> FeatureSpec:
        """Load a spec written by :meth:`to_json`.

        Args:
            path: the JSON file.

        Returns:
            The spec.

        Raises:
            InvalidSpecError: when the file is missing, unreadable, not JSON, or breaks the schema.
            UnsupportedSpecVersionError: when it was written with another schema version.
        """
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
        except FileNotFoundError as e:
            raise InvalidSpecError(f"feature spec file not found: {p}") from e
        except (OSError, UnicodeDecodeError) as e:
            raise InvalidSpecError(f"cannot read feature spec file {p}: {e}") from e
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as e:
            raise InvalidSpecError(f"feature spec file {p} is not valid JSON: {e}") from e
        try:
            return cls.from_dict(doc)
        except InvalidSpecError as e:
            raise type(e)(f"{p}: {e.message}") from e


# ---------------------------------------------------------------------- fitting helpers


def _fit_column(
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
    raw = [_json_scalar(v) for v in valid.tolist()]
    if any(v is None for v in raw):
        kinds = sorted({type(v).__name__ for v in valid.tolist() if _json_scalar(v) is None})
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
        levels = [_json_scalar(c) for c in dtype.categories if _json_scalar(c) in distinct]
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
    codes = np.array([index[_json_scalar(v)] for v in valid_values], dtype=np.float64)
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


def _json_scalar(value: Any) -> _JSONScalar | None:
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


def _copula_correlation(ordinals: list[np.ndarray]) -> np.ndarray:
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


# ---------------------------------------------------------------------- sampling helpers


def _column(feature: Feature, u: np.ndarray, nulls: np.ndarray) -> pd.Series:
    """Build one sampled column with the reference dtype."""
    has_nulls = bool(nulls.any())
    values: np.ndarray
    if isinstance(feature, NumericFeature):
        values = feature.values_at(u)
        if has_nulls:
            values[nulls] = np.nan
    else:
        values = feature.values_at(u)
        if has_nulls:
            values[nulls] = None
    return _cast(pd.Series(values), feature.dtype, has_nulls)


def _cast(series: pd.Series, dtype: str, has_nulls: bool) -> pd.Series:
    target = pd.api.types.pandas_dtype(dtype)
    if has_nulls and isinstance(target, np.dtype):
        if target.kind in "iu":
            target = np.dtype(np.float64)
        elif target.kind == "b":
            target = np.dtype(object)
    return series.astype(target)


# ---------------------------------------------------------------------- schema checks


def _feature_from_dict(item: Any, i: int) -> Feature:
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
    if not isinstance(values, list) or not values or any(_json_scalar(v) is None for v in values):
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


def _check_correlation(raw: np.ndarray | Sequence[Sequence[float]], d: int) -> np.ndarray:
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
