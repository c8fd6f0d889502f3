"""Live samples for drift monitoring: sampled inputs and scores of a model version from the router's events.

Event files (``<root>/date=YYYY-MM-DD/hour=HH/*.parquet``, schema in ``modelgate_contracts.events``)
carry the prediction summary ``score`` of every request and, for a share of consenting requests, a
nullable string column ``inputs``: a JSON object ``{input tensor name: flat list of the values of one
sampled row}``. :func:`input_rows` maps those objects onto the feature spec's columns: a single tensor's
values in the spec's column order, or one single-value tensor per feature named like it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from include.drift.errors import DriftInputError

log = logging.getLogger(__name__)

INPUTS_COLUMN = "inputs"
"""Nullable string column of the event files holding a sampled row's inputs as JSON."""


@dataclass(frozen=True)
class LiveSample:
    """What the events of one version hold for one window.

    Attributes:
        scores: prediction summaries of successful primary requests.
        inputs: the sampled input rows, one JSON string (or None) per event that carried one.
    """

    scores: np.ndarray
    inputs: list[str]


def read_window(
    root: str | Path, model: str, version: str | None, start: datetime, end: datetime
) -> LiveSample:
    """Read one model's primary events with ``start <= ts < end`` through the analytics engine.

    The engine (``MODELGATE_ANALYTICS_ENGINE``, ``docs/analytics.md``) reads only the hour folders
    the window touches and runs :func:`include.analytics.drift_sql.window_sql`: filters, projection
    and the finite-score test happen there; the scores come back as one Arrow column.

    Args:
        root: the router's events root (a local folder or a URL pyarrow understands).
        model: the model name.
        version: only events served by this version (None: any).
        start: window start (timezone-aware).
        end: window end (timezone-aware).

    Returns:
        The scores and sampled inputs of the window (empty when there are no files).

    Raises:
        DriftInputError: a bad window or unreadable files.
    """
    from include.analytics import drift_sql
    from include.analytics.engine import AnalyticsError, hour_folders, open_engine

    if start.tzinfo is None or end.tzinfo is None or not start < end:
        raise DriftInputError(f"invalid window {start} .. {end}: need timezone-aware start < end")
    from include.compliance.residency import check_events_region

    check_events_region(str(root))  # another region's events are not read
    text = str(root)
    empty = LiveSample(np.array([], dtype=np.float64), [])
    if ("://" not in text or text.startswith("file://")) and not Path(text.removeprefix("file://")).exists():
        log.info("no events root %s yet", text)
        return empty
    try:
        with open_engine() as engine:
            if not engine.register_events(text, hour_folders(start, end)):
                return empty
            has_inputs = INPUTS_COLUMN in engine.columns("events")
            t = engine.query(drift_sql.window_sql(model, version, start, end, has_inputs))
    except AnalyticsError as e:
        raise DriftInputError(f"cannot read router events under {text}: {e}") from e
    scores = t.column("score").drop_null().to_numpy(zero_copy_only=False).astype(np.float64)
    return LiveSample(scores, t.column(INPUTS_COLUMN).drop_null().to_pylist())


def input_rows(records: Sequence[str], features: Sequence[str]) -> tuple[pd.DataFrame, int]:
    """Map sampled input records onto feature columns.

    Args:
        records: JSON objects ``{tensor name: flat list of values}``, one sampled row each.
        features: the feature spec's column names, in order.

    Returns:
        The rows (numeric values as floats, others as given) and how many records could not be mapped
        (bad JSON, a tensor whose length differs from the number of features...).
    """
    rows: list[list[Any]] = []
    unmapped = 0
    names = list(features)
    for text in records:
        try:
            obj = json.loads(text)
        except (TypeError, ValueError):
            unmapped += 1
            continue
        if not isinstance(obj, dict) or not obj:
            unmapped += 1
            continue
        if len(obj) == 1:
            values = next(iter(obj.values()))
            if isinstance(values, list) and len(values) == len(names):
                rows.append(values)
                continue
        if set(obj) >= set(names) and all(isinstance(obj[n], list) and len(obj[n]) == 1 for n in names):
            rows.append([obj[n][0] for n in names])
            continue
        unmapped += 1
    if unmapped:
        log.warning("%d sampled input records do not map onto the %d features", unmapped, len(names))
    frame = pd.DataFrame(rows, columns=names)
    for name in names:
        converted = pd.to_numeric(frame[name], errors="coerce")
        if converted.notna().sum() == frame[name].notna().sum():
            frame[name] = converted
    return frame, unmapped
