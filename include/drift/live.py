"""Live samples for drift monitoring: sampled inputs and scores of a model version from the router's events.

Event files (``<root>/date=YYYY-MM-DD/hour=HH/*.parquet``, schema in ``modelgate_contracts.events``)
carry the prediction summary ``score`` of every request and, for a share of consenting requests, a
nullable string column ``inputs``: a JSON object ``{input tensor name: flat list of the values of one
sampled row}``. The analytics engine maps those objects onto the feature spec's columns
(:mod:`include.analytics.drift_sql`: a single tensor's values in the spec's column order, or one
single-value tensor per feature named like it); Python receives numbers only.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

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
        inputs: the sampled input rows mapped onto the features (one float column per feature, in
            order; NaN for a null value), in time order.
        unmapped: sampled input records that did not map onto the features.
    """

    scores: np.ndarray
    inputs: pd.DataFrame = field(default_factory=pd.DataFrame)
    unmapped: int = 0

    @property
    def sampled(self) -> int:
        """Sampled input records of the window, mapped or not."""
        return len(self.inputs) + self.unmapped


def read_window(
    root: str | Path,
    model: str,
    version: str | None,
    start: datetime,
    end: datetime,
    features: Sequence[str] | None = (),
) -> LiveSample:
    """Read one model's primary events with ``start <= ts < end`` through the analytics engine.

    The engine (``MODELGATE_ANALYTICS_ENGINE``, ``docs/analytics.md``) reads only the hour folders
    the window touches and runs :func:`include.analytics.drift_sql.window_sql`: filters, projection,
    the finite-score test and the mapping of the sampled inputs onto the features happen there; the
    scores and each feature come back as Arrow columns.

    Args:
        root: the router's events root (a local folder or a URL pyarrow understands).
        model: the model name.
        version: only events served by this version (None: any).
        start: window start (timezone-aware).
        end: window end (timezone-aware).
        features: the feature names the sampled inputs are mapped onto, in order; None for ``x0 ..
            x<w-1>`` with ``w`` the number of values of the window's first sampled record (no feature
            spec); empty (the default) for the scores only (``unmapped`` then counts every sampled record).

    Returns:
        The scores and mapped sampled inputs of the window (empty when there are no files).

    Raises:
        DriftInputError: a bad window, a feature name the engine cannot quote, or unreadable files.
    """
    from include.analytics import drift_sql
    from include.analytics.engine import AnalyticsError, hour_folders, open_engine

    if start.tzinfo is None or end.tzinfo is None or not start < end:
        raise DriftInputError(f"invalid window {start} .. {end}: need timezone-aware start < end")
    from include.compliance.residency import check_events_region

    check_events_region(str(root))  # another region's events are not read
    text = str(root)
    empty = LiveSample(np.array([], dtype=np.float64), pd.DataFrame(columns=list(features or [])))
    if ("://" not in text or text.startswith("file://")) and not Path(text.removeprefix("file://")).exists():
        log.info("no events root %s yet", text)
        return empty
    try:
        with open_engine() as engine:
            if not engine.register_events(text, hour_folders(start, end)):
                return empty
            has_inputs = INPUTS_COLUMN in engine.columns("events")
            width = 0
            if features is None and has_inputs:
                w = engine.query(drift_sql.width_sql(model, version, start, end)).column("width").to_pylist()
                width = int(w[0]) if w and w[0] is not None else 0
            t = engine.query(drift_sql.window_sql(model, version, start, end, has_inputs, features, width))
    except AnalyticsError as e:
        raise DriftInputError(f"cannot read router events under {text}: {e}") from e
    names = [f"x{i}" for i in range(width)] if features is None else list(features)
    scores = t.column("score").drop_null().to_numpy(zero_copy_only=False).astype(np.float64)
    sampled = np.asarray(t.column("sampled").to_numpy(zero_copy_only=False), dtype=bool)
    mapped = np.asarray(t.column("mapped").to_numpy(zero_copy_only=False), dtype=bool)
    frame = pd.DataFrame(
        {
            name: np.asarray(
                t.column(drift_sql.feature_column(i)).to_numpy(zero_copy_only=False), dtype=np.float64
            )[mapped]
            for i, name in enumerate(names)
        },
        columns=names,
    )
    unmapped = int(sampled.sum() - mapped.sum())
    if unmapped and names:
        log.warning("%d sampled input records do not map onto the %d features", unmapped, len(names))
    return LiveSample(scores, frame.reset_index(drop=True), unmapped)
