"""The drift monitor's input mapping in plain Python: the reference the engines' SQL is tested against.

It was the monitor's own mapping before the engines did it (``include/analytics/drift_sql.py``);
kept here, written from the documented definition and not from the SQL, so a test can require both
engines to return exactly its rows.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

import pandas as pd


def _parse(text: str) -> dict[str, list[float | None]] | None:
    """The record as ``{tensor: values}``, or None unless an object of arrays of JSON numbers or nulls."""

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        keys = [k for k, _ in items]
        if len(set(keys)) != len(keys):
            raise ValueError("repeated key")
        return dict(items)

    def no_constant(token: str) -> float:
        raise ValueError(f"{token} is not JSON")

    try:
        obj = json.loads(text, object_pairs_hook=pairs, parse_constant=no_constant)
    except (TypeError, ValueError):
        return None
    if not isinstance(obj, dict):
        return None
    for values in obj.values():
        if not isinstance(values, list):
            return None
        if not all(v is None or (isinstance(v, int | float) and not isinstance(v, bool)) for v in values):
            return None
    return {k: [None if v is None else float(v) for v in vs] for k, vs in obj.items()}


def reference_width(records: Sequence[str]) -> int:
    """Number of values of the first parseable record (the width without a feature spec)."""
    for text in records:
        obj = _parse(text)
        if obj is not None:
            return sum(len(v) for v in obj.values())
    return 0


def reference_rows(records: Sequence[str], features: Sequence[str] | None) -> tuple[pd.DataFrame, int]:
    """Map sampled input records onto features.

    Args:
        records: the window's sampled input records (JSON text), in time order.
        features: the feature names; None for ``x0 .. x<w-1>``: the values of all tensors in name order,
            ``w`` from the first parseable record.

    Returns:
        The mapped rows (float columns, NaN for a JSON null) and the number of unmapped records.
    """
    names = list(features) if features is not None else [f"x{i}" for i in range(reference_width(records))]
    rows: list[list[float]] = []
    unmapped = 0
    for text in records:
        obj = _parse(text)
        row: list[float | None] | None = None
        if obj is not None and features is None:
            flat = [v for k in sorted(obj) for v in obj[k]]
            row = flat if len(flat) == len(names) else None
        elif obj is not None:
            if len(obj) == 1 and len(next(iter(obj.values()))) == len(names):
                row = next(iter(obj.values()))
            elif all(n in obj and len(obj[n]) == 1 for n in names):
                row = [obj[n][0] for n in names]
        if row is None:
            unmapped += 1
        else:
            rows.append([math.nan if v is None else v for v in row])
    return pd.DataFrame(rows, columns=names, dtype="float64"), unmapped
