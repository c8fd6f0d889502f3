"""The drift monitor's window as SQL: one version's finite scores and sampled input records.

One scan of the primary events of a model (optionally one version) in ``[start, end)`` returns only
the rows the monitor uses: ``score`` (null unless the request succeeded with a finite score) and
``inputs`` (the router's sampled input row as JSON, null on most records), leaving out every row
that has neither. The scores come back as one Arrow column; only the sampled input records (a small
share of the window, ``ROUTER_EVENTS_INPUT_SAMPLE``) are parsed afterwards.
"""

from __future__ import annotations

from datetime import datetime

from include.analytics.engine import literal, window_where

_FINITE = "ABS(CAST(score AS DOUBLE)) < CAST('Infinity' AS DOUBLE)"
"""True for a finite score; false for NaN (larger than any number in DuckDB and Spark), ±inf and null."""


def window_sql(model: str, version: str | None, start: datetime, end: datetime, has_inputs: bool) -> str:
    """Select the scores and sampled inputs of one model (version) with ``start <= ts < end``.

    Args:
        model: the model name.
        version: only events served by this version (None: any).
        start: window start (timezone-aware).
        end: window end (timezone-aware).
        has_inputs: the events view has the ``inputs`` column (files of older routers lack it).

    Returns:
        One SQL statement over the view ``events`` with columns ``score`` (double, null where the
        row only carries inputs) and ``inputs`` (string, null where absent), in time order.
    """
    score = f"CASE WHEN status = 200 AND {_FINITE} THEN CAST(score AS DOUBLE) END"
    inputs = "CASE WHEN inputs <> '' THEN inputs END" if has_inputs else "CAST(NULL AS STRING)"
    keep = f"(status = 200 AND {_FINITE})" + (
        " OR (inputs IS NOT NULL AND inputs <> '')" if has_inputs else ""
    )
    where = window_where(model, start, end)
    if version is not None:
        where += f" AND model_version = {literal(version, 'version')}"
    return f"SELECT {score} AS score, {inputs} AS inputs FROM events WHERE {where} AND ({keep}) ORDER BY ts, request_id"
