"""Analysis of one experiment: per-variant sufficient statistics → tests → decision.

:func:`analyse_window` turns a :class:`~include.abtest.reduce.WindowSums` (the window reduced by
the analytics engine to per-variant, per-day sums) into the results document (JSON-ready): units
per variant against the expected weights (SRM), every metric compared treatment-versus-control with the engine's :func:`~include.abtest.compare.compare`
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

from include.abtest.compare import ComparisonResult, SequentialConfig, compare
from include.abtest.decision import decide
from include.abtest.multiple import adjust_p_values
from include.abtest.reduce import WindowSums, reduce_window
from include.abtest.srm import srm_test
from include.abtest.sufficient import ArmStats, CupedStats, MeanStats, ProportionStats, RatioStats

if TYPE_CHECKING:
    from include.abtest.experiment import Experiment, Metric

log = logging.getLogger(__name__)



def stat_fields(metric: Metric, cuped: bool) -> list[str]:
    """The fields of the metric's statistics class (``n`` first).

    Args:
        metric: the metric.
        cuped: whether it is CUPED-adjusted.

    Returns:
        Field names, e.g. ``["n", "sum", "sum_squares"]`` for a mean.
    """
    if metric.type == "ratio":
        return ["n", "num_sum", "num_sum_squares", "den_sum", "den_sum_squares", "cross_sum"]
    if cuped:
        return ["n", "sum", "sum_squares", "pre_sum", "pre_sum_squares", "cross_sum"]
    if metric.type == "proportion":
        return ["n", "successes"]
    return ["n", "sum", "sum_squares"]


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


def _cumulative(exp: Experiment, sums: WindowSums) -> dict[str, Any]:
    """Cumulative effect of the primary metric by day of first exposure."""
    metric = exp.primary
    i = exp.metrics.index(metric)
    cuped = metric.name in exp.cuped_metrics
    per_arm = {
        v: {k: np.cumsum(a) for k, a in fields.items()}
        for v, fields in sums.metric_sums(i, stat_fields(metric, cuped)).items()
    }
    control = exp.control_name
    series: dict[str, list[dict[str, Any]]] = {}
    for t in exp.treatments:
        points = []
        for d in range(sums.days):
            cs = stats_from_sums(metric, cuped, {k: float(v[d]) for k, v in per_arm[control].items()})
            tstats = stats_from_sums(metric, cuped, {k: float(v[d]) for k, v in per_arm[t.name].items()})
            res = _compare(exp, metric, cs, tstats)
            points.append({"day": d + 1, "n_control": cs.n, "n_treatment": tstats.n, "effect": _json(res.effect),
                           "ci": [_json(res.ci[0]), _json(res.ci[1])]})  # fmt: skip
        series[t.name] = points
    return {"metric": metric.name, "difference": metric.difference, "series": series}


def analyse_window(exp: Experiment, sums: WindowSums, as_of: datetime | None = None) -> dict[str, Any]:
    """Analyse the reduced window of an experiment and decide.

    Args:
        exp: the experiment.
        sums: per-variant, per-day sums and exclusion counts (:func:`include.abtest.reduce.reduce_window`).
        as_of: when the analysis is made (default now); past ``exp.end`` without a winner
            the experiment stops as inconclusive.

    Returns:
        The results document (JSON-ready): ``experiment``, ``model``, ``as_of``, ``window``,
        ``control``, ``variants``, ``counts``, ``srm``, ``metrics``, ``cumulative``, ``decision``.
    """
    as_of = as_of or datetime.now(UTC)
    units = {v: round(float(sums.units[k].sum())) for k, v in enumerate(sums.variants)}
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
    for i, m in enumerate(exp.metrics):
        cuped = m.name in exp.cuped_metrics
        per_arm = sums.metric_sums(i, stat_fields(m, cuped))
        arms = {
            name: stats_from_sums(m, cuped, {k: float(v.sum()) for k, v in fields.items()})
            for name, fields in per_arm.items()
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
        "window": list(sums.window),
        "engine": sums.engine,
        "control": exp.control_name,
        "alpha": exp.alpha,
        "mde": exp.mde,
        "min_sample": exp.min_sample,
        "sequential": exp.sequential.tuning_parameter if exp.sequential.enabled else None,
        "correction": exp.correction,
        "variants": variants,
        "counts": dict(sums.counts),
        "srm": srm,
        "metrics": metrics,
        "cumulative": _cumulative(exp, sums) if total_u else None,
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
        The results document (see :func:`analyse_window`).

    Raises:
        DataError: events, outcomes or covariates are missing or lack columns.
    """
    as_of = as_of or datetime.now(UTC)
    return analyse_window(exp, reduce_window(exp, events_root, data_root, as_of), as_of)
