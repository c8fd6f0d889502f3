"""The canary judge's window as SQL: the primary events of one model in ``[start, end)``.

Only the columns the judge reads come back (``variant``, ``model_version``, ``consent`` (the judge
leaves out requests without consent and reports how many, ``docs/privacy.md``), ``status``,
``latency_ms``, ``score``, and ``inputs``: the router's sampled input row, null on most records), filtered by date partition, time, model and ``shadow`` in the engine,
in time order. The judge's rank test (Mann-Whitney U) and quantiles need the samples themselves, so
the window is filtered and projected here, not summed.
"""

from __future__ import annotations

from datetime import datetime

from include.analytics.engine import window_where

COLUMNS = ("variant", "model_version", "consent", "status", "latency_ms", "score", "inputs")
"""The columns of the window."""


def window_sql(model: str, start: datetime, end: datetime) -> str:
    """Select the primary events of ``model`` with ``start <= ts < end``.

    Args:
        model: the model name.
        start: window start (timezone-aware).
        end: window end (timezone-aware).

    Returns:
        One SQL statement over the view ``events``.
    """
    return f"SELECT {', '.join(COLUMNS)} FROM events WHERE {window_where(model, start, end)} ORDER BY ts, request_id"
