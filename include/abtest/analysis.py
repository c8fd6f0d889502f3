"""Analysis of one experiment: per-unit rows → per-variant sufficient statistics → tests → decision.

:func:`analyse_units` turns a :class:`~include.abtest.reduce.UnitReduction` into the results
document (JSON-ready): units per variant against the expected weights (SRM), every metric
compared treatment-versus-control with the engine's :func:`~include.abtest.compare.compare`
(CUPED where configured, sequential when on), p-values corrected per family, the cumulative
effect of the primary metric by day of first exposure, and the decision
(:mod:`include.abtest.decision`). :func:`analyse_experiment` does the reduction too.
"""

from __future__ import annotations

import logging
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from include.abtest.compare import ComparisonResult, SequentialConfig, compare
from include.abtest.decision import decide
from include.abtest.multiple import adjust_p_values
from include.abtest.reduce import (
    COVARIATE,
    EVENT_PREFIX,
    FIRST_TS,
    OUTCOME_PREFIX,
    REQUESTS,
    VARIANT,
    UnitReduction,
    reduce_units,
)
from include.abtest.srm import srm_test
from include.abtest.sufficient import ArmStats, CupedStats, MeanStats, ProportionStats, RatioStats

if TYPE_CHECKING:
    import pyarrow as pa

    from include.abtest.experiment import Experiment, Metric

log = logging.getLogger(__name__)

Vec = npt.NDArray[np.float64]
DAY_US = 86_400_000_000


def _column(table: pa.Table, metric: Metric, name: str) -> Vec:
    if metric.source == "events":
        col = REQUESTS if name == REQUESTS else f"{EVENT_PREFIX}{name}"
    else:
        col = f"{OUTCOME_PREFIX}{name}"
    return np.asarray(table.column(col).to_numpy(zero_copy_only=False), dtype=np.float64)


def unit_sums(table: pa.Table, metric: Metric, cuped: bool) -> dict[str, Vec]:
    """Per-unit terms whose sums are the metric's sufficient statistics.

    Args:
        table: per-unit rows (one arm, or all arms).
        metric: the metric.
        cuped: add the pre-period covariate terms.

    Returns:
        Field name of the statistics class → per-unit term (``n`` is all ones).
    """
    ones = np.ones(table.num_rows, dtype=np.float64)
    if metric.type == "ratio":
        assert metric.numerator and metric.denominator
        y = _column(table, metric, metric.numerator)
        x = _column(table, metric, metric.denominator)
        return {"n": ones, "num_sum": y, "num_sum_squares": y * y, "den_sum": x, "den_sum_squares": x * x,
                "cross_sum": x * y}  # fmt: skip
    assert metric.column
    y = _column(table, metric, metric.column)
    if metric.type == "proportion":
        y = (y > 0).astype(np.float64)
    if cuped:
        c = np.asarray(table.column(COVARIATE).to_numpy(zero_copy_only=False), dtype=np.float64)
        return {"n": ones, "sum": y, "sum_squares": y * y, "pre_sum": c, "pre_sum_squares": c * c,
                "cross_sum": y * c}  # fmt: skip
    if metric.type == "proportion":
        return {"n": ones, "successes": y}
    return {"n": ones, "sum": y, "sum_squares": y * y}


def stats_from_sums(metric: Metric, cuped: bool, sums: dict[str, float]) -> ArmStats:
    """Build the statistics object of one arm from summed per-unit terms.

    Args:
        metric: the metric.
        cuped: whether the sums carry covariate terms.
        sums: field name → sum (as produced by summing :func:`unit_sums`).

    Returns:
        The arm's statistics.
    """
    n = round(sums["n"])
    if metric.type == "ratio":
        return RatioStats(n, sums["num_sum"], sums["num_sum_squares"], sums["den_sum"], sums["den_sum_squares"],
                          sums["cross_sum"])  # fmt: skip
    if cuped:
        return CupedStats(n, sums["sum"], sums["sum_squares"], sums["pre_sum"], sums["pre_sum_squares"],
                          sums["cross_sum"])  # fmt: skip
    if metric.type == "proportion":
        return ProportionStats(n, round(sums["successes"]))
    return MeanStats(n, sums["sum"], sums["sum_squares"])


def _variant_mask(table: pa.Table, name: str) -> npt.NDArray[np.bool_]:
    import pyarrow.compute as pc

    return np.asarray(pc.equal(table.column(VARIANT), name).to_numpy(zero_copy_only=False), dtype=bool)


def _json(v: float) -> float | None:
    return None if not math.isfinite(v) else float(v)


def _good(metric: Metric, res: ComparisonResult) -> bool | None:
    """True: significant in the good direction; False: significant in the bad one; None: neither."""
    if not res.ok or not res.significant:
        return None
    better = res.effect > 0 if metric.direction == "increase" else res.effect < 0
    return bool(better)


def _compare(exp: Experiment, metric: Metric, c: ArmStats, t: ArmStats) -> ComparisonResult:
    seq = SequentialConfig(exp.sequential.tuning_parameter) if exp.sequential.enabled else None
    return compare(
        c, t, difference=metric.difference, alpha=exp.alpha, alternative="two-sided", sequential=seq
    )


def _cumulative(exp: Experiment, table: pa.Table, masks: dict[str, Any], as_of: datetime) -> dict[str, Any]:
    """Cumulative effect of the primary metric by day of first exposure."""
    metric = exp.primary
    cuped = metric.name in exp.cuped_metrics
    start_us = int(exp.start.timestamp() * 1_000_000)
    days = max(1, math.ceil((min(as_of, exp.end).timestamp() * 1_000_000 - start_us) / DAY_US))
    ts = np.asarray(table.column(FIRST_TS).cast("int64").to_numpy(zero_copy_only=False), dtype=np.int64)
    day = np.clip((ts - start_us) // DAY_US, 0, days - 1)
    per_arm: dict[str, dict[str, Vec]] = {}
    terms = unit_sums(table, metric, cuped)
    for name, mask in masks.items():
        per_arm[name] = {
            k: np.cumsum(np.bincount(day[mask], weights=v[mask], minlength=days)) for k, v in terms.items()
        }
    control = exp.control_name
    series: dict[str, list[dict[str, Any]]] = {}
    for t in exp.treatments:
        points = []
        for d in range(days):
            cs = stats_from_sums(metric, cuped, {k: float(v[d]) for k, v in per_arm[control].items()})
            tstats = stats_from_sums(metric, cuped, {k: float(v[d]) for k, v in per_arm[t.name].items()})
            res = _compare(exp, metric, cs, tstats)
            points.append({"day": d + 1, "n_control": cs.n, "n_treatment": tstats.n, "effect": _json(res.effect),
                           "ci": [_json(res.ci[0]), _json(res.ci[1])]})  # fmt: skip
        series[t.name] = points
    return {"metric": metric.name, "difference": metric.difference, "series": series}


def analyse_units(exp: Experiment, reduction: UnitReduction, as_of: datetime | None = None) -> dict[str, Any]:
    """Analyse per-unit rows of an experiment and decide.

    Args:
        exp: the experiment.
        reduction: per-unit rows and exclusion counts (:func:`reduce_units`).
        as_of: when the analysis is made (default now); past ``exp.end`` without a winner
            the experiment stops as inconclusive.

    Returns:
        The results document (JSON-ready): ``experiment``, ``model``, ``as_of``, ``window``,
        ``control``, ``variants``, ``counts``, ``srm``, ``metrics``, ``cumulative``, ``decision``.
    """
    as_of = as_of or datetime.now(UTC)
    table = reduction.table
    masks = {v.name: _variant_mask(table, v.name) for v in exp.variants}
    units = {name: int(m.sum()) for name, m in masks.items()}
    total_w = sum(v.weight for v in exp.variants)
    total_u = sum(units.values())
    variants = [
        {
            "name": v.name,
            "weight": v.weight,
            "expected_share": v.weight / total_w,
            "units": units[v.name],
            "observed_share": units[v.name] / total_u if total_u else None,
            "model_version": v.model_version,
            "role": "control" if v.name == exp.control_name else "treatment",
        }
        for v in exp.variants
    ]
    srm: dict[str, Any] | None = None
    if total_u:
        s = srm_test([units[v.name] for v in exp.variants], [v.weight for v in exp.variants])
        srm = {"p_value": s.p_value, "statistic": s.statistic, "expected": list(s.expected),
               "observed": list(s.observed), "threshold": s.threshold, "mismatch": s.mismatch}  # fmt: skip

    metrics: list[dict[str, Any]] = []
    for m in exp.metrics:
        cuped = m.name in exp.cuped_metrics
        terms = unit_sums(table, m, cuped)
        arms = {
            name: stats_from_sums(m, cuped, {k: float(v[mask].sum()) for k, v in terms.items()})
            for name, mask in masks.items()
        }
        comparisons = []
        for t in exp.treatments:
            res = _compare(exp, m, arms[exp.control_name], arms[t.name])
            comparisons.append({"variant": t.name, **res.to_dict(), "significant": res.significant,
                                "good": _good(m, res), "p_adjusted": None})  # fmt: skip
        metrics.append({
            "name": m.name, "role": exp.role(m.name), "type": m.type, "source": m.source,
            "direction": m.direction, "difference": m.difference, "cuped": cuped,
            "arms": {n: {"n": a.n, "mean": _json(a.mean) if a.n else None} for n, a in arms.items()},
            "comparisons": comparisons,
        })  # fmt: skip
    _correct(exp, metrics)
    results: dict[str, Any] = {
        "experiment": exp.id,
        "model": exp.model,
        "as_of": as_of.isoformat(),
        "window": list(reduction.window),
        "control": exp.control_name,
        "alpha": exp.alpha,
        "mde": exp.mde,
        "min_sample": exp.min_sample,
        "sequential": exp.sequential.tuning_parameter if exp.sequential.enabled else None,
        "correction": exp.correction,
        "variants": variants,
        "counts": dict(reduction.counts),
        "srm": srm,
        "metrics": metrics,
        "cumulative": _cumulative(exp, table, masks, as_of) if total_u else None,
    }
    results["decision"] = decide(exp, results, as_of)
    return results


def _correct(exp: Experiment, metrics: list[dict[str, Any]]) -> None:
    """Adjust p-values per family (primary; secondary); guardrails stay unadjusted (harm is
    looked for as sensitively as possible). ``significant`` and ``good`` follow the adjusted values."""
    for role in ("primary", "secondary"):
        refs = [(m, c) for m in metrics if m["role"] == role for c in m["comparisons"] if c["error"] is None]
        if not refs:
            continue
        adj = adjust_p_values([float(c["p_value"]) for _, c in refs], method=exp.correction, alpha=exp.alpha)
        for (_, c), p, rej in zip(refs, adj.adjusted, adj.reject, strict=True):
            c["p_adjusted"] = p
            c["significant"] = bool(rej)
            if not rej:
                c["good"] = None
    for m in metrics:
        if m["role"] == "guardrail":
            for c in m["comparisons"]:
                c["p_adjusted"] = c["p_value"]


def analyse_experiment(
    exp: Experiment,
    events_root: Path | str,
    data_root: Path | str,
    as_of: datetime | None = None,
) -> dict[str, Any]:
    """Reduce the experiment's window and analyse it.

    Args:
        exp: the experiment.
        events_root: root of the router's event Parquet files.
        data_root: folder that relative outcome and covariate paths are resolved against.
        as_of: end of the window and time of the analysis (default now).

    Returns:
        The results document (see :func:`analyse_units`).

    Raises:
        DataError: events, outcomes or covariates are missing or lack columns.
    """
    as_of = as_of or datetime.now(UTC)
    reduction = reduce_units(exp, events_root, data_root, as_of)
    return analyse_units(exp, reduction, as_of)
