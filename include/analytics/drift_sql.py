"""The drift monitor's window as SQL: one version's finite scores and its sampled inputs mapped onto features.

One scan of the primary events of a model (optionally one version) in ``[start, end)`` returns only
the rows the monitor uses: ``score`` (null unless the request succeeded with a finite score) and, for
the records that carry the router's sampled input row (JSON ``{tensor name: flat list of values}``, a
small share of the window, ``ROUTER_EVENTS_INPUT_SAMPLE``), that row mapped onto the features by the
engine (``sampled``, ``mapped``, and one double column ``f<i>`` per feature), leaving out every row
that has neither. The mapping of a record onto features ``n_1 .. n_k``:

- **one tensor of k values**: feature ``i`` is its ``i``-th value (a model with one input tensor);
- else **one single-value tensor per feature**, named like it (other tensors ignored): feature ``i``
  is the value of tensor ``n_i``;
- else (not JSON, not an object of arrays of JSON numbers, another width, a missing tensor...) the
  record is **unmapped**: ``sampled`` true, ``mapped`` false, every ``f<i>`` null.

A JSON ``null`` value reads as a null feature value (the monitor drops nulls per feature). Without a
feature spec, the features are ``x0 .. x<w-1>``: the record's values, tensors in name order
(:data:`include.analytics.engine.INPUT_VECTOR`'s order), ``w`` the number of values of the window's
first parseable sampled record (:func:`width_sql`); records of another width are unmapped.

The functions the statements call (``mg_input_map``, ``mg_map_values``, ``mg_only``, ``mg_get``,
``mg_at``, ``mg_len``) are defined alike by both runners (DuckDB macros, Spark SQL functions).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from include.analytics.engine import literal, window_where

_FINITE = "ABS(CAST(score AS DOUBLE)) < CAST('Infinity' AS DOUBLE)"
"""True for a finite score; false for NaN (larger than any number in DuckDB and Spark), ±inf and null."""

_SAMPLED = "(inputs IS NOT NULL AND inputs <> '')"


def feature_column(i: int) -> str:
    """The result column of feature ``i`` (0-based; the names of a spec may not be SQL identifiers)."""
    return f"f{i}"


def _where(model: str, version: str | None, start: datetime, end: datetime) -> str:
    where = window_where(model, start, end)
    if version is not None:
        where += f" AND model_version = {literal(version, 'version')}"
    return where


def width_sql(model: str, version: str | None, start: datetime, end: datetime) -> str:
    """The number of values of the window's first (by time, request id) parseable sampled input record.

    Args:
        model: the model name.
        version: only events served by this version (None: any).
        start: window start (timezone-aware).
        end: window end (timezone-aware).

    Returns:
        One SQL statement with one column ``width`` and at most one row (none without a parseable record).
    """
    values = "mg_map_values(mg_input_map(inputs))"
    return (
        f"SELECT mg_len({values}) AS width FROM events WHERE {_where(model, version, start, end)}"
        f" AND {_SAMPLED} AND {values} IS NOT NULL ORDER BY ts, request_id LIMIT 1"
    )


def _mapping(features: Sequence[str] | None, width: int) -> tuple[str, str, list[str]]:
    """The record's parsed form, the condition that it maps, and the value expression of each feature."""
    if features is None:  # no spec: x0 .. x<width-1>, the record's values in tensor-name order
        vec = "mg_map_values(m)"
        return (
            "mg_input_map(inputs)",
            f"COALESCE(mg_len({vec}) = {width}, FALSE)",
            [f"mg_at({vec}, {i + 1})" for i in range(width)],
        )
    k = len(features)
    keys = [literal(n, "feature name") for n in features]
    one = f"COALESCE(mg_len(mg_only(m)) = {k}, FALSE)"
    per = "COALESCE(" + " AND ".join(f"mg_len(mg_get(m, {n})) = 1" for n in keys) + ", FALSE)"
    values = [
        f"CASE WHEN {one} THEN mg_at(mg_only(m), {i + 1}) WHEN {per} THEN mg_at(mg_get(m, {n}), 1) END"
        for i, n in enumerate(keys)
    ]
    return "mg_input_map(inputs)", f"({one} OR {per})", values


def window_sql(
    model: str,
    version: str | None,
    start: datetime,
    end: datetime,
    has_inputs: bool,
    features: Sequence[str] | None = (),
    width: int = 0,
) -> str:
    """Select the scores and the mapped sampled inputs of one model (version) with ``start <= ts < end``.

    Args:
        model: the model name.
        version: only events served by this version (None: any).
        start: window start (timezone-aware).
        end: window end (timezone-aware).
        has_inputs: the events view has the ``inputs`` column (files of older routers lack it).
        features: the feature names, in order; None for ``x0 .. x<width-1>`` (no spec); empty for
            scores only.
        width: the number of features when ``features`` is None (see :func:`width_sql`).

    Returns:
        One SQL statement over the view ``events`` with columns ``score`` (double, null where the row
        only carries inputs), ``sampled`` and ``mapped`` (booleans) and ``f0 .. f<k-1>`` (doubles,
        null unless mapped), in time order.
    """
    score = f"CASE WHEN status = 200 AND {_FINITE} THEN CAST(score AS DOUBLE) END"
    n = width if features is None else len(features)
    keep = f"(status = 200 AND {_FINITE})"
    if not has_inputs or n == 0:
        cols = [f"CAST(NULL AS DOUBLE) AS {feature_column(i)}" for i in range(n)]
        sampled = _SAMPLED if has_inputs else "FALSE"
        keep += f" OR {_SAMPLED}" if has_inputs else ""
        select = ", ".join([f"{score} AS score", f"{sampled} AS sampled", "FALSE AS mapped", *cols])
        return f"SELECT {select} FROM events WHERE {_where(model, version, start, end)} AND ({keep}) ORDER BY ts, request_id"
    parsed, mapped, values = _mapping(features, width)
    inner = (
        f"SELECT ts, request_id, {score} AS score, {_SAMPLED} AS sampled, CASE WHEN {_SAMPLED} THEN {parsed} END AS m"
        f" FROM events WHERE {_where(model, version, start, end)} AND ({keep} OR {_SAMPLED})"
    )
    cols = [
        f"CASE WHEN sampled AND {mapped} THEN {v} END AS {feature_column(i)}" for i, v in enumerate(values)
    ]
    select = ", ".join(["score", "sampled", f"COALESCE(sampled AND {mapped}, FALSE) AS mapped", *cols])
    return f"SELECT {select} FROM ({inner}) w ORDER BY ts, request_id"
