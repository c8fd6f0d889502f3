"""The A/B reduction as one SQL statement: events → units → (class, variant, day) sums.

The statement reads the views ``events`` (and ``outcomes``, ``covariates`` when the experiment has
them) and returns one row per ``(class, vcode, day)``:

- ``class``: ``ok`` (an analysed unit), ``anonymous`` (events without consent and without a unit id:
  the router records no unit id for a request without consent, ``docs/privacy.md``; one row holds them
  all), ``no_unit`` (consenting events without a unit id), ``several`` (a unit seen in more than one
  variant), ``no_consent`` (a unit with an event without consent) or ``unknown`` (a variant the
  experiment does not name), decided in that order;
- ``vcode``: the variant's index in the experiment (its ``len(variants)`` when unknown);
- ``day``: the day of the unit's first exposure since the experiment's start, clipped to
  ``[0, days - 1]``;
- ``units``, ``requests``, ``cov_missing`` (units without a covariate row), and per metric ``i`` the
  sums of its per-unit terms ``m<i>_<field>`` whose names are the fields of the metric's statistics
  class (:mod:`include.abtest.sufficient`): ``sum``/``sum_squares`` (mean), ``successes``
  (proportion), ``num_sum``... (ratio), ``pre_sum``... (CUPED).

Per unit: the event sums (``latency_ms``, ``score`` with missing values as 0, ``error`` as
``status <> 200``, ``requests`` as the event count), outcome sums joined by request id (before the
unit aggregation) or by unit id (after it), and the covariate joined by unit id. A proportion's
per-unit value is 1 when the unit's sum is above 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from include.analytics.engine import DAY_US, literal, micros

if TYPE_CHECKING:
    from include.abtest.experiment import Experiment, Metric

CLASSES = ("ok", "anonymous", "no_unit", "several", "no_consent", "unknown")
"""The unit classes of the result rows."""

_D0 = "CAST(0 AS DOUBLE)"
_D1 = "CAST(1 AS DOUBLE)"


@dataclass(frozen=True)
class Inputs:
    """Columns the reduction reads and whether the optional views take part.

    Attributes:
        event_columns: per-event quantities the metrics read (``latency_ms``, ``score``, ``error``).
        outcome_columns: outcome columns the metrics read.
        by_request: outcomes are keyed by ``request_id`` (else by ``unit_id``).
        outcomes_have_ts: the outcome view has ``ts`` (records at or after the window's end are left out).
        cuped: the covariate view takes part.
    """

    event_columns: tuple[str, ...]
    outcome_columns: tuple[str, ...]
    by_request: bool
    outcomes_have_ts: bool
    cuped: bool


def event_columns(exp: Experiment) -> tuple[str, ...]:
    """Per-event quantities the experiment's ``source: events`` metrics read (``requests`` aside)."""
    cols: list[str] = []
    for m in exp.metrics:
        if m.source == "events":
            cols.extend(c for c in m.columns if c not in cols and c != "requests")
    return tuple(cols)


def outcome_columns(exp: Experiment) -> tuple[str, ...]:
    """Outcome columns the experiment's ``source: outcomes`` metrics read."""
    cols: list[str] = []
    for m in exp.metrics:
        if m.source == "outcomes":
            cols.extend(c for c in m.columns if c not in cols)
    return tuple(cols)


def days(exp: Experiment, end: datetime) -> int:
    """Days of the cumulative series: from the start to ``min(end, exp.end)``, at least 1."""
    span = micros(min(end, exp.end)) - micros(exp.start)
    return max(1, -(-span // DAY_US))


def _event_expr(col: str) -> str:
    if col == "error":
        return f"CASE WHEN status <> 200 THEN {_D1} ELSE {_D0} END"
    return f"COALESCE(CAST({col} AS DOUBLE), {_D0})"


def _value(metric: Metric, col: str) -> str:
    if metric.source == "events":
        return "CAST(requests AS DOUBLE)" if col == "requests" else f"e_{col}"
    return f"o_{col}"


def metric_terms(i: int, metric: Metric, cuped: bool) -> list[tuple[str, str]]:
    """The (alias, SQL sum) pairs of one metric's sufficient statistics, ``n`` aside.

    Args:
        i: the metric's index in ``exp.metrics``.
        metric: the metric.
        cuped: the metric is CUPED-adjusted.

    Returns:
        Pairs ``(m<i>_<field>, "SUM(...)")``.
    """
    p = f"m{i}_"
    if metric.type == "ratio":
        assert metric.numerator and metric.denominator
        y, x = _value(metric, metric.numerator), _value(metric, metric.denominator)
        return [(p + "num_sum", f"SUM({y})"), (p + "num_sum_squares", f"SUM({y} * {y})"),
                (p + "den_sum", f"SUM({x})"), (p + "den_sum_squares", f"SUM({x} * {x})"),
                (p + "cross_sum", f"SUM({x} * {y})")]  # fmt: skip
    assert metric.column
    y = _value(metric, metric.column)
    if metric.type == "proportion":
        y = f"(CASE WHEN {y} > 0 THEN {_D1} ELSE {_D0} END)"
    if cuped:
        c = "covariate"
        return [(p + "sum", f"SUM({y})"), (p + "sum_squares", f"SUM({y} * {y})"), (p + "pre_sum", f"SUM({c})"),
                (p + "pre_sum_squares", f"SUM({c} * {c})"), (p + "cross_sum", f"SUM({y} * {c})")]  # fmt: skip
    if metric.type == "proportion":
        return [(p + "successes", f"SUM({y})")]
    return [(p + "sum", f"SUM({y})"), (p + "sum_squares", f"SUM({y} * {y})")]


def reduction_sql(exp: Experiment, end: datetime, inputs: Inputs) -> str:
    """The reduction of one experiment's window ``[exp.start, min(end, exp.end))``.

    Args:
        exp: the experiment.
        end: end of the window (exclusive).
        inputs: what the views offer (see :class:`Inputs`).

    Returns:
        One SQL statement (see the module's docstring for its rows).
    """
    start_us, end_us = micros(exp.start), micros(min(end, exp.end))
    nv = len(exp.variants)
    first_day, last_day = f"{exp.start:%Y-%m-%d}", f"{min(end, exp.end):%Y-%m-%d}"
    vcase = " ".join(f"WHEN {literal(v.name, 'variant')} THEN {k}" for k, v in enumerate(exp.variants))
    ev_cols = [f"{_event_expr(c)} AS e_{c}" for c in inputs.event_columns]
    if inputs.by_request:
        ev_cols.append("request_id AS rid")
    ctes = [
        "ev AS (SELECT " + ", ".join([
            f"{exp.unit} AS unit", f"CASE variant {vcase} ELSE {nv} END AS vcode", "ts",
            "CASE WHEN consent THEN 1 ELSE 0 END AS consent_i", *ev_cols,
        ]) + " FROM events"
        f" WHERE date >= '{first_day}' AND date <= '{last_day}' AND unix_micros(ts) >= {start_us}"
        f" AND unix_micros(ts) < {end_us} AND model = {literal(exp.model, 'model')} AND NOT shadow)"
    ]  # fmt: skip
    out_cols = inputs.outcome_columns
    o_where = f" WHERE unix_micros(ts) < {end_us}" if inputs.outcomes_have_ts else ""
    o_sums = ", ".join(f"SUM(CAST({c} AS DOUBLE)) AS o_{c}" for c in out_cols)
    unit_aggs = ["ev.unit AS unit", "MIN(vcode) AS vmin", "MAX(vcode) AS vmax", "MIN(ts) AS first_ts",
                 "COUNT(*) AS requests", "MIN(consent_i) AS consent_all"]  # fmt: skip
    unit_aggs += [f"SUM(e_{c}) AS e_{c}" for c in inputs.event_columns]
    join = ""
    if inputs.by_request and out_cols:
        ctes.append(f"ro AS (SELECT request_id, {o_sums} FROM outcomes{o_where} GROUP BY request_id)")
        unit_aggs += [f"SUM(COALESCE(ro.o_{c}, {_D0})) AS o_{c}" for c in out_cols]
        join = " LEFT JOIN ro ON ev.rid = ro.request_id"
    # events without a unit id fall into two groups: with consent (no_unit) and without (anonymous)
    group = "ev.unit, CASE WHEN ev.unit IS NULL THEN consent_i ELSE 1 END"
    ctes.append(f"u AS (SELECT {', '.join(unit_aggs)} FROM ev{join} GROUP BY {group})")
    per_unit = [
        "CASE WHEN u.unit IS NULL AND consent_all = 0 THEN 'anonymous' WHEN u.unit IS NULL THEN 'no_unit' "
        "WHEN vmin <> vmax THEN 'several' "
        f"WHEN consent_all = 0 THEN 'no_consent' WHEN vmin >= {nv} THEN 'unknown' ELSE 'ok' END AS class",
        "vmin AS vcode",
        f"LEAST(GREATEST(CAST(FLOOR((unix_micros(first_ts) - {start_us}) / {DAY_US}.0) AS BIGINT), 0), "
        f"{days(exp, end) - 1}) AS day",
        "requests",
        *[f"e_{c}" for c in inputs.event_columns],
    ]
    joins = ""
    if out_cols and not inputs.by_request:
        ctes.append(f"uo AS (SELECT unit_id, {o_sums} FROM outcomes{o_where} GROUP BY unit_id)")
        per_unit += [f"COALESCE(uo.o_{c}, {_D0}) AS o_{c}" for c in out_cols]
        joins += " LEFT JOIN uo ON u.unit = uo.unit_id"
    elif out_cols:
        per_unit += [f"o_{c}" for c in out_cols]
    if inputs.cuped:
        assert exp.cuped is not None
        ctes.append(
            f"cov AS (SELECT unit_id, CAST({exp.cuped.column} AS DOUBLE) AS covariate FROM covariates)"
        )
        per_unit += [f"COALESCE(cov.covariate, {_D0}) AS covariate",
                     "CASE WHEN cov.covariate IS NULL THEN 1 ELSE 0 END AS cov_missing"]  # fmt: skip
        joins += " LEFT JOIN cov ON u.unit = cov.unit_id"
    else:
        per_unit.append("0 AS cov_missing")
    ctes.append(f"k AS (SELECT {', '.join(per_unit)} FROM u{joins})")
    sums = ["COUNT(*) AS units", "SUM(requests) AS requests", "SUM(cov_missing) AS cov_missing"]
    for i, m in enumerate(exp.metrics):
        sums += [f"{expr} AS {alias}" for alias, expr in metric_terms(i, m, m.name in exp.cuped_metrics)]
    return (
        "WITH "
        + ",\n".join(ctes)
        + f"\nSELECT class, vcode, day, {', '.join(sums)} FROM k GROUP BY class, vcode, day"
    )


def outcome_rows_sql(end: datetime, has_ts: bool) -> str:
    """Count of outcome records before ``end`` (all of them when the view has no ``ts``)."""
    where = f" WHERE unix_micros(ts) < {micros(end)}" if has_ts else ""
    return f"SELECT COUNT(*) AS n FROM outcomes{where}"


def covariate_repeats_sql() -> str:
    """Unit ids that occur more than once in the covariates (at most 5)."""
    return "SELECT unit_id FROM covariates GROUP BY unit_id HAVING COUNT(*) > 1 ORDER BY unit_id LIMIT 5"
