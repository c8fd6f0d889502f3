"""The canary judge: canary against baseline over the same window, after Kayenta's classifier.

Each metric is compared on raw samples, canary against baseline, with an interval at confidence
``1 - alpha`` (one-sided in the bad direction for ``increase`` / ``decrease`` metrics, two-sided for
``either``):

- **rates** (error rate, any 0/1 outcome): Fisher's exact p-value and the Newcombe-Wilson interval of
  the difference of rates ``canary - baseline`` (:mod:`include.canary.rates`);
- **continuous metrics** (latency, prediction score): the Wilcoxon rank-sum test with the
  Hodges-Lehmann shift and its interval, exact for small samples without ties and by the normal
  approximation with tie and continuity correction otherwise, as R's ``wilcox.test(conf.int=TRUE)``
  (:mod:`include.canary.ranktest`), plus the probability of superiority (CLES) and the ratio of means;
- **drift** metrics (rows of sampled input features): :func:`include.drift.detect.compare` of the
  canary's rows against the baseline's, High when any feature drifted.

Classification (``effect`` of the metric): ``shift`` (rates always) is ``High`` when the interval lies
above the tolerance band ``[-tol, tol]``, ``tol = max(abs_tolerance, rel_tolerance * |baseline centre|)``,
and ``Low`` when it lies below, provided the test is significant (R's exact interval for tiny
samples can only reach a lower confidence than asked); ``cles`` / ``mean_ratio`` are ``High`` when the test is significant
upwards and the CLES reaches ``min_cles`` / the mean ratio reaches ``min_mean_ratio`` (``Low``
likewise downwards). ``NoData`` below ``min_samples`` samples on either side. A classification *fails*
the metric when it lies in the bad ``direction``.

The stage score is ``100 * weight of metrics that did not fail / weight of metrics with data``.
Decision: a router guard trip, a failed **critical** metric or a NoData metric whose ``on_no_data`` is
``fail`` (the default for critical metrics) rolls back; a NoData metric with ``on_no_data: marginal``
asks a human; no data at all gives the judge's ``on_no_data``; otherwise ``score >= pass_threshold``
passes, ``marginal_threshold <= score < pass_threshold`` asks a human, and a lower score rolls back.
Every figure ends up in the JSON-serialisable result; rules and references are in ``docs/canary.md``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from include.canary.errors import InvalidPolicy
from include.canary.judge_config import (
    DEFAULT_METRICS,
    Classification,
    Decision,
    Direction,
    JudgeConfig,
    Kind,
    MetricConfig,
)
from include.canary.ranktest import Alternative, rank_sum_test
from include.canary.rates import fisher_p, newcombe_interval

__all__ = ["DEFAULT_METRICS", "JudgeConfig", "MetricConfig", "MetricResult", "compare_metric", "judge"]

log = logging.getLogger(__name__)

_ALTERNATIVE: dict[Direction, Alternative] = {
    "increase": "greater",
    "decrease": "less",
    "either": "two-sided",
}


@dataclass
class MetricResult:
    """The comparison of one metric (every figure, JSON-serialisable via :meth:`to_dict`).

    ``effect`` is the estimate (Hodges-Lehmann shift, or difference of rates) and ``interval`` its
    confidence interval at ``confidence`` (``None`` stands for an infinite one-sided bound);
    ``thresholds`` holds what the classification compared against.
    """

    name: str
    kind: Kind
    classification: Classification
    failed: bool
    critical: bool
    weight: float
    n_canary: int
    n_baseline: int
    canary: dict[str, float | None] = field(default_factory=dict)
    baseline: dict[str, float | None] = field(default_factory=dict)
    effect: float | None = None
    interval: list[float | None] = field(default_factory=lambda: [None, None])
    confidence: float | None = None
    alternative: str | None = None
    relative_effect: float | None = None
    tolerance: float | None = None
    cles: float | None = None
    mean_ratio: float | None = None
    thresholds: dict[str, Any] = field(default_factory=dict)
    test: str | None = None
    statistic: float | None = None
    p_value: float | None = None
    on_no_data: str | None = None
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Return the result as JSON data (non-finite numbers become None)."""
        return _finite(asdict(self))


def _finite(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    if isinstance(value, float | np.floating):
        f = float(value)
        return f if math.isfinite(f) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def _as_array(samples: Sequence[float] | np.ndarray | None) -> np.ndarray:
    arr = np.asarray(samples if samples is not None else [], dtype=np.float64).reshape(-1)
    return arr[np.isfinite(arr)]


def _summary(x: np.ndarray, kind: Kind) -> dict[str, float | None]:
    if x.size == 0:
        return {"mean": None} if kind == "rate" else {"mean": None, "p50": None, "p90": None, "p99": None}
    if kind == "rate":
        return {"mean": float(x.mean()), "count": float(x.sum())}
    p50, p90, p99 = np.quantile(x, [0.5, 0.9, 0.99])
    return {"mean": float(x.mean()), "p50": float(p50), "p90": float(p90), "p99": float(p99)}


def _by_interval(low: float, high: float, tol: float, significant: bool) -> Classification:
    """Interval outside the band, and the test significant (tiny exact samples cannot reach 1 - alpha)."""
    if significant and low > tol:
        return "High"
    if significant and high < -tol:
        return "Low"
    return "Pass"


def _by_effect_size(cfg: MetricConfig, res: MetricResult, alpha: float) -> Classification:
    """CLES or mean-ratio classification: significant in that direction and past the threshold."""
    p = res.p_value if res.p_value is not None else 1.0
    up = res.cles is not None and res.cles > 0.5 if cfg.effect == "cles" else (res.mean_ratio or 0) > 1
    if p >= alpha:
        return "Pass"
    if cfg.effect == "cles":
        cles = res.cles if res.cles is not None else 0.5
        if cles >= cfg.min_cles and up:
            return "High"
        if cles <= 1 - cfg.min_cles and not up:
            return "Low"
        return "Pass"
    ratio = res.mean_ratio if res.mean_ratio is not None else 1.0
    if ratio >= cfg.min_mean_ratio:
        return "High"
    if ratio <= 1 / cfg.min_mean_ratio:
        return "Low"
    return "Pass"


def _is_failure(cls: Classification, direction: Direction) -> bool:
    if cls == "High":
        return direction in ("increase", "either")
    if cls == "Low":
        return direction in ("decrease", "either")
    return False


def compare_metric(
    cfg: MetricConfig,
    canary: Sequence[float] | np.ndarray | None,
    baseline: Sequence[float] | np.ndarray | None,
    alpha: float = 0.05,
) -> MetricResult:
    """Compare one metric's canary samples with its baseline samples.

    Args:
        cfg: the metric's configuration.
        canary: raw samples of the canary (0/1 for rates); non-finite values are dropped.
        baseline: raw samples of the baseline.
        alpha: significance level (one-sided for directional metrics).

    Returns:
        The classification with every figure.

    Raises:
        InvalidPolicy: a rate metric with samples other than 0 and 1.
    """
    if cfg.kind == "drift":
        return _compare_drift(cfg, canary, baseline, alpha)
    c, b = _as_array(canary), _as_array(baseline)
    res = MetricResult(
        cfg.name,
        cfg.kind,
        "NoData",
        False,
        cfg.critical,
        float(cfg.weight),
        int(c.size),
        int(b.size),
        _summary(c, cfg.kind),
        _summary(b, cfg.kind),
    )
    res.on_no_data = cfg.no_data_action
    if c.size < cfg.min_samples or b.size < cfg.min_samples:
        res.reason = (
            f"NoData: fewer than {cfg.min_samples} samples (canary {c.size}, baseline {b.size}); "
            f"on_no_data {cfg.no_data_action}"
        )
        return res
    alt = _ALTERNATIVE[cfg.direction]
    res.alternative, res.confidence = alt, 1.0 - alpha
    mean_c, mean_b = float(c.mean()), float(b.mean())
    res.mean_ratio = mean_c / mean_b if mean_b != 0 else (math.inf if mean_c > 0 else None)
    if cfg.kind == "rate":
        if np.any((c != 0) & (c != 1)) or np.any((b != 0) & (b != 1)):
            raise InvalidPolicy(f"metric {cfg.name!r} is a rate: samples must be 0 or 1")
        xc, xb = int(c.sum()), int(b.sum())
        res.p_value = fisher_p(xc, int(c.size), xb, int(b.size), alt)
        low, high = newcombe_interval(xc, int(c.size), xb, int(b.size), 1.0 - alpha, alt)
        centre_b, res.effect = mean_b, mean_c - mean_b
        res.test, res.statistic = "fisher-exact+newcombe-wilson", float(xc)
    else:
        r = rank_sum_test(c, b, alt, 1.0 - alpha)
        low, high, centre_b = r.low, r.high, float(np.median(b))
        res.effect, res.p_value, res.cles = r.estimate, r.p_value, r.cles
        res.test, res.statistic = f"wilcoxon-rank-sum-{r.method}+hodges-lehmann", r.statistic
    tol = max(cfg.abs_tolerance, cfg.rel_tolerance * abs(centre_b))
    res.interval, res.tolerance = [low, high], tol
    res.relative_effect = res.effect / abs(centre_b) if centre_b != 0 else None
    effect = "shift" if cfg.kind == "rate" else cfg.effect
    res.thresholds = {"effect": effect, "tolerance": tol, "alpha": alpha}
    if effect == "shift":
        res.classification = _by_interval(low, high, tol, (res.p_value or 0.0) < alpha)
        why = f"interval [{low:.6g}, {high:.6g}] against band ±{tol:.6g}"
    else:
        key = "min_cles" if effect == "cles" else "min_mean_ratio"
        res.thresholds[key] = getattr(cfg, key)
        res.classification = _by_effect_size(cfg, res, alpha)
        value = res.cles if effect == "cles" else res.mean_ratio
        why = f"{effect} {value if value is None else round(value, 6)} against {key} {getattr(cfg, key)}"
    res.failed = _is_failure(res.classification, cfg.direction)
    what = "rate difference" if cfg.kind == "rate" else "Hodges-Lehmann shift"
    res.reason = (
        f"{what} {res.effect:+.6g} (canary mean {mean_c:.6g}, baseline mean {mean_b:.6g}), {why}, "
        f"p={res.p_value:.3g} ({alt}, alpha {alpha}): {res.classification}"
        + (f", bad direction {cfg.direction}" if res.failed else "")
    )
    return res


def _rows(samples: Sequence[float] | np.ndarray | None) -> np.ndarray:
    arr = np.asarray(samples if samples is not None else np.empty((0, 0)), dtype=np.float64)
    return arr.reshape(arr.shape[0], -1) if arr.ndim else arr.reshape(0, 0)


def _compare_drift(
    cfg: MetricConfig,
    canary: Sequence[float] | np.ndarray | None,
    baseline: Sequence[float] | np.ndarray | None,
    alpha: float,
) -> MetricResult:
    """Input drift of the canary's sampled rows against the baseline's (include.drift, BH across features)."""
    from include.drift.detect import compare

    c, b = _rows(canary), _rows(baseline)
    res = MetricResult(cfg.name, cfg.kind, "NoData", False, cfg.critical, float(cfg.weight), len(c), len(b))
    res.on_no_data = cfg.no_data_action
    if len(c) < cfg.min_samples or len(b) < cfg.min_samples or c.shape[1] != b.shape[1]:
        res.reason = (
            f"NoData: fewer than {cfg.min_samples} input rows or different widths (canary {c.shape}, "
            f"baseline {b.shape}); on_no_data {cfg.no_data_action}"
        )
        return res
    pairs = {
        f"x{j}": (b[:, j][np.isfinite(b[:, j])], c[:, j][np.isfinite(c[:, j])], False)
        for j in range(c.shape[1])
    }
    out = compare(pairs, alpha)
    drifted = [n for n, f in out["features"].items() if f["drift"]]
    res.test, res.alternative, res.confidence = (
        "drift psi/ks/js + benjamini-hochberg",
        "two-sided",
        1.0 - alpha,
    )
    res.p_value = min(f["p_value"] for f in out["features"].values())
    res.effect, res.thresholds = float(len(drifted)), {"alpha": alpha, "drifted": drifted}
    res.classification = "High" if drifted else "Pass"
    res.failed = _is_failure(res.classification, cfg.direction)
    res.reason = f"{len(drifted)} of {len(pairs)} input features drifted {drifted} (alpha {alpha}): {res.classification}"
    return res


def judge(
    canary: Mapping[str, Sequence[float] | np.ndarray],
    baseline: Mapping[str, Sequence[float] | np.ndarray],
    config: JudgeConfig | None = None,
    guard_events: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """Judge a canary stage from raw samples per metric.

    Args:
        canary: metric name to canary samples (a metric missing here is NoData).
        baseline: metric name to baseline samples.
        config: thresholds and metrics (defaults when None).
        guard_events: router guard cuts of the canary in the window; any one rolls back.

    Returns:
        JSON data: ``decision`` (pass / marginal / rollback), ``score`` (0-100 or None without data),
        ``reasons``, ``critical_failures``, ``no_data`` (metrics that lacked data), ``metrics`` (every
        figure), ``guard_events``, ``config``.
    """
    cfg = config or JudgeConfig()
    results = [compare_metric(m, canary.get(m.name), baseline.get(m.name), cfg.alpha) for m in cfg.metrics]
    with_data = [r for r in results if r.classification != "NoData"]
    total = sum(r.weight for r in with_data)
    score = None if total <= 0 else round(100.0 * sum(r.weight for r in with_data if not r.failed) / total, 2)
    critical = [r.name for r in results if r.failed and r.critical]
    no_data = {
        a: [r for r in results if r.classification == "NoData" and r.on_no_data == a]
        for a in ("fail", "marginal")
    }
    reasons: list[str] = []
    decision: Decision
    if guard_events:
        decision = "rollback"
        reasons += [
            f"router guard cut the canary: {e.get('reason', 'no reason given')}" for e in guard_events
        ]
    if critical:
        decision = "rollback"
        reasons += [f"critical metric {r.name} failed: {r.reason}" for r in results if r.name in critical]
    if no_data["fail"]:
        decision = "rollback"
        reasons += [f"metric {r.name} has no data and fails the stage: {r.reason}" for r in no_data["fail"]]
    if not reasons and no_data["marginal"]:
        decision = "marginal"
        reasons += [f"metric {r.name} has no data, a human decides: {r.reason}" for r in no_data["marginal"]]
        reasons += [f"{r.name} failed: {r.reason}" for r in results if r.failed]
    if not reasons:
        if score is None:
            decision = cfg.on_no_data
            reasons.append(f"no metric had enough data; on_no_data is {cfg.on_no_data}")
        elif score >= cfg.pass_threshold:
            decision = "pass"
            reasons.append(f"score {score} >= pass threshold {cfg.pass_threshold}")
        elif score >= cfg.marginal_threshold:
            decision = "marginal"
            reasons.append(
                f"score {score} between marginal {cfg.marginal_threshold} and pass {cfg.pass_threshold}"
            )
        else:
            decision = "rollback"
            reasons.append(f"score {score} < marginal threshold {cfg.marginal_threshold}")
        reasons += [f"{r.name} failed: {r.reason}" for r in results if r.failed]
    log.info("canary judge: %s (score %s): %s", decision, score, "; ".join(reasons))
    return _finite(
        {
            "decision": decision,
            "score": score,
            "reasons": reasons,
            "critical_failures": critical,
            "no_data": [r.name for r in results if r.classification == "NoData"],
            "metrics": [r.to_dict() for r in results],
            "guard_events": [dict(e) for e in guard_events],
            "config": cfg.to_dict(),
        }
    )
