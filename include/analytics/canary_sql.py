"""The canary judge's window as SQL: the primary events of one model in ``[start, end)``.

The engine filters (date partition, time, model, ``shadow``), projects and types every column the
judge reads, so what comes back is numbers and Arrow lists, never text to parse in Python:
``variant``, ``model_version``, ``consent`` (the judge leaves out requests without consent and
reports how many, ``docs/privacy.md``), ``status``, ``latency_ms`` (double), ``score`` (double; null
unless the request succeeded) and ``inputs``: the router's sampled input row parsed by the engine's
JSON functions into ``ARRAY<DOUBLE>`` (:data:`include.analytics.engine.INPUT_VECTOR`; null on most
records). The judge's rank test (Mann-Whitney U) and quantiles need the samples themselves, so the
window is filtered, projected and typed here, not summed; Python only slices the Arrow columns.
"""

from __future__ import annotations

from datetime import datetime

from include.analytics.engine import INPUT_VECTOR, window_where

COLUMNS = ("variant", "model_version", "consent", "status", "latency_ms", "score", "inputs")
"""The columns of the window."""


def window_sql(model: str, start: datetime, end: datetime, has_inputs: bool = True) -> str:
    """Select the primary events of ``model`` with ``start <= ts < end``.

    Args:
        model: the model name.
        start: window start (timezone-aware).
        end: window end (timezone-aware).
        has_inputs: the events view has the ``inputs`` column (files of older routers lack it).

    Returns:
        One SQL statement over the view ``events`` with :data:`COLUMNS`, in time order.
    """
    raw = "inputs" if has_inputs else "CAST(NULL AS STRING)"
    cols = (
        "variant, model_version, consent, CAST(status AS INT) AS status, "
        "CAST(latency_ms AS DOUBLE) AS latency_ms, "
        "CASE WHEN status = 200 THEN CAST(score AS DOUBLE) END AS score, "
        f"{INPUT_VECTOR}({raw}) AS inputs"
    )
    return f"SELECT {cols} FROM events WHERE {window_where(model, start, end)} ORDER BY ts, request_id"
