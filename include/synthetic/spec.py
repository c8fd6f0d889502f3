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
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

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
from include.synthetic.features import (
    TAIL_PROBABILITIES,
    CategoricalFeature,
    Feature,
    NumericFeature,
    check_correlation,
    feature_from_dict,
    quantile_probabilities,
)
from include.synthetic.files import atomic_write
from include.synthetic.fitting import copula_correlation, fit_column

log = logging.getLogger(__name__)

__all__ = [
    "MAX_SAMPLE_ROWS",
    "SCHEMA_VERSION",
    "TAIL_PROBABILITIES",
    "CategoricalFeature",
    "Feature",
    "FeatureSpec",
    "NumericFeature",
    "quantile_probabilities",
]

SCHEMA_VERSION = 1
"""Version of the JSON layout written by :meth:`FeatureSpec.to_json`."""

MAX_SAMPLE_ROWS = 10_000_000
"""Largest ``n`` accepted by :meth:`FeatureSpec.sample` (bounds memory)."""


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
        self._correlation = check_correlation(correlation, len(self._features))
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
            feature, ordinal = fit_column(
                str(name), df[name], probabilities, categorical_max_levels, max_categories
            )
            features.append(feature)
            ordinals.append(ordinal)
        correlation = copula_correlation(ordinals)
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
        features = [feature_from_dict(item, i) for i, item in enumerate(raw_features)]
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
