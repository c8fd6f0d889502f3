"""Drift of a current sample against a reference, per feature and overall, from data frames or Parquet.

Per feature (:func:`include.drift.stats.feature_drift`): PSI, KS and Jensen-Shannon with p-values from
their null at the actual sample sizes, combined into one p-value; across features, Benjamini-Hochberg
at ``alpha`` marks the drifted ones; ``drift`` is true when any feature is marked. Under no drift the
chance of a false alarm is therefore ``alpha`` at any sample size (see ``docs/drift.md`` for the
calibration tests).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from include.drift.errors import DriftInputError
from include.drift.stats import DEFAULT_BINS, benjamini_hochberg, feature_drift

if TYPE_CHECKING:
    from include.synthetic import FeatureSpec

log = logging.getLogger(__name__)

DEFAULT_ALPHA = 0.01
"""Chance of a false drift alarm per comparison (all features together)."""


def read_frame(path: str | Path, what: str) -> pd.DataFrame:
    """Read a Parquet file of feature rows.

    Args:
        path: the file.
        what: ``reference`` or ``current``, for messages.

    Returns:
        The frame.

    Raises:
        DriftInputError: missing, unreadable or without rows.
    """
    p = Path(path)
    if not p.is_file():
        raise DriftInputError(f"{what} file {p} does not exist")
    try:
        frame = pd.read_parquet(p)
    except Exception as e:  # pyarrow raises several types for a bad file; the message names the file
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise DriftInputError(f"{what} file {p} is not a readable Parquet file: {first}") from e
    if frame.empty:
        raise DriftInputError(f"{what} file {p} has no rows")
    return frame


def _columns(
    reference: pd.DataFrame, current: pd.DataFrame, spec: FeatureSpec | None
) -> list[tuple[str, bool]]:
    if spec is not None:
        wanted = [(f.name, f.kind == "categorical") for f in spec.features]
        missing = [n for n, _ in wanted if n not in reference.columns or n not in current.columns]
        if missing:
            raise DriftInputError(f"feature spec columns missing from the inputs: {missing}")
        return wanted
    common = [c for c in reference.columns if c in set(current.columns)]
    if not common:
        raise DriftInputError(
            f"reference and current have no common columns (reference {list(reference.columns)[:10]}, "
            f"current {list(current.columns)[:10]})"
        )
    return [(str(c), False) for c in common]


def _values(frame: pd.DataFrame, name: str, categorical: bool, what: str) -> np.ndarray:
    col = frame[name].dropna()
    if categorical:
        values = col.astype(str).to_numpy()
    else:
        if not (pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col)):
            raise DriftInputError(
                f"column {name!r} of {what} is not numeric (dtype {col.dtype}); declare categorical "
                "features with --spec"
            )
        values = col.to_numpy(dtype=np.float64)
        values = values[np.isfinite(values)]
    if values.size == 0:
        raise DriftInputError(f"column {name!r} of {what} has no values")
    return values


def _num(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def compare(
    pairs: Mapping[str, tuple[np.ndarray, np.ndarray, bool]],
    alpha: float = DEFAULT_ALPHA,
    bins: int = DEFAULT_BINS,
) -> dict[str, Any]:
    """Compare features given as arrays (sizes may differ per feature).

    Args:
        pairs: feature name to ``(reference values, current values, categorical)``.
        alpha: false-alarm level (Benjamini-Hochberg across the features).
        bins: pooled-quantile bins of PSI and JS.

    Returns:
        ``{"features": {name: {"psi", "ks_p", "js", "drift", "psi_p", "js_p", "ks", "p_value",
        "n_reference", "n_current"}}, "drift", "alpha", "method"}``.

    Raises:
        DriftInputError: a bad ``alpha``, no feature, or a feature without values.
    """
    if not 0 < alpha < 1:
        raise DriftInputError(f"alpha must be between 0 and 1, got {alpha!r}")
    if not pairs:
        raise DriftInputError("no feature to compare")
    results = {}
    for name, (ref, cur, categorical) in pairs.items():
        try:
            results[name] = feature_drift(ref, cur, bins=bins, categorical=categorical)
        except ValueError as e:
            raise DriftInputError(f"feature {name!r}: {e}") from e
    flags = benjamini_hochberg([r.p_value for r in results.values()], alpha)
    features = {
        name: {
            "psi": r.psi,
            "ks_p": _num(r.ks_p),
            "js": r.js,
            "drift": flag,
            "psi_p": r.psi_p,
            "js_p": r.js_p,
            "ks": _num(r.ks),
            "p_value": r.p_value,
            "n_reference": int(pairs[name][0].size),
            "n_current": int(pairs[name][1].size),
        }
        for (name, r), flag in zip(results.items(), flags, strict=True)
    }
    drifted = [n for n, f in features.items() if f["drift"]]
    log.info("drift: %d of %d features drifted at alpha %s: %s", len(drifted), len(features), alpha, drifted)
    return {
        "features": features,
        "drift": bool(drifted),
        "alpha": alpha,
        "method": "psi/js hypergeometric null + ks, cauchy-combined per feature, benjamini-hochberg",
    }


def detect(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    spec: FeatureSpec | None = None,
    alpha: float = DEFAULT_ALPHA,
    bins: int = DEFAULT_BINS,
) -> dict[str, Any]:
    """Compare every feature of ``current`` with ``reference``.

    Args:
        reference: reference rows (training sample or a sample of the spec).
        current: live rows.
        spec: feature spec naming the features (and which are categorical); None compares every
            common column as numeric.
        alpha: false-alarm level (Benjamini-Hochberg across features).
        bins: pooled-quantile bins of PSI and JS.

    Returns:
        :func:`compare`'s result plus ``n_reference`` and ``n_current`` (rows).

    Raises:
        DriftInputError: empty inputs, no common column, a non-numeric column or a bad ``alpha``.
    """
    if not 0 < alpha < 1:
        raise DriftInputError(f"alpha must be between 0 and 1, got {alpha!r}")
    if reference.empty or current.empty:
        raise DriftInputError(f"empty input: reference has {len(reference)} rows, current {len(current)}")
    pairs = {
        name: (_values(reference, name, cat, "reference"), _values(current, name, cat, "current"), cat)
        for name, cat in _columns(reference, current, spec)
    }
    return compare(pairs, alpha, bins) | {"n_reference": len(reference), "n_current": len(current)}
