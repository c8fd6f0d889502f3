"""The canary judge: canary against baseline over the same window, after Kayenta's classifier.

Each metric is compared on raw samples, canary against baseline:

- **rates** (error rate, any 0/1 outcome): a two-sided two-proportion z-test (pooled variance); the
  effect is the difference of the rates ``canary - baseline``;
- **continuous metrics** (latency, prediction score): a two-sided Mann-Whitney U test
  (``scipy.stats.mannwhitneyu``); the effect is the difference of the medians ``canary - baseline``.

A metric is classified ``High`` (or ``Low``) when the test is significant (``p < alpha``) **and** the
effect exceeds the tolerance ``max(abs_tolerance, rel_tolerance * |baseline centre|)`` upwards (or
downwards), ``Pass`` otherwise, and ``NoData`` when either side has fewer than ``min_samples`` samples.
A classification *fails* the metric when it lies in the metric's bad ``direction`` (``increase``: High;
``decrease``: Low; ``either``: both).

The stage score is ``100 * weight of metrics that did not fail / weight of metrics with data``
(NoData metrics leave the denominator). Decision: a router guard trip or a failed **critical** metric
rolls back; no data at all gives ``on_no_data`` (default ``marginal``: a human decides); otherwise
``score >= pass_threshold`` passes, ``marginal_threshold <= score < pass_threshold`` asks a human,
and a lower score rolls back. Defaults (:data:`DEFAULT_METRICS`, :class:`JudgeConfig`) are documented
in ``docs/canary.md``. Every figure ends up in the JSON-serialisable result.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal, get_args

import numpy as np
from scipy import stats

from include.canary.errors import InvalidPolicy

log = logging.getLogger(__name__)

Classification = Literal["Pass", "High", "Low", "NoData"]
Direction = Literal["increase", "decrease", "either"]
Kind = Literal["rate", "continuous"]
Decision = Literal["pass", "marginal", "rollback"]


@dataclass(frozen=True)
class MetricConfig:
    """How one metric is judged.

    Attributes:
        name: metric name (``error_rate``, ``latency_ms``, ``score`` or any outcome metric).
        kind: ``rate`` (0/1 samples, two-proportion test) or ``continuous`` (Mann-Whitney U).
        direction: which change is bad: ``increase``, ``decrease`` or ``either``.
        weight: share of the stage score (any non-negative number; weights are normalised).
        critical: a failure of this metric fails the stage whatever the score.
        abs_tolerance: smallest effect (in the metric's unit) that counts.
        rel_tolerance: smallest effect relative to the baseline's centre (rate or median) that counts.
        min_samples: samples needed on each side, below which the metric is ``NoData``.
    """

    name: str
    kind: Kind = "continuous"
    direction: Direction = "increase"
    weight: float = 1.0
    critical: bool = False
    abs_tolerance: float = 0.0
    rel_tolerance: float = 0.0
    min_samples: int = 50

    def __post_init__(self) -> None:
        problems = []
        if not self.name:
            problems.append("name is empty")
        if self.kind not in get_args(Kind):
            problems.append(f"kind must be one of {list(get_args(Kind))}, got {self.kind!r}")
        if self.direction not in get_args(Direction):
            problems.append(f"direction must be one of {list(get_args(Direction))}, got {self.direction!r}")
        for attr in ("weight", "abs_tolerance", "rel_tolerance"):
            value = getattr(self, attr)
            if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
                problems.append(f"{attr} must be a non-negative number, got {value!r}")
        if (
            isinstance(self.min_samples, bool)
            or not isinstance(self.min_samples, int)
            or self.min_samples < 1
        ):
            problems.append(f"min_samples must be a positive integer, got {self.min_samples!r}")
        if problems:
            raise InvalidPolicy(f"metric {self.name!r}: " + "; ".join(problems))


DEFAULT_METRICS: tuple[MetricConfig, ...] = (
    MetricConfig("error_rate", "rate", "increase", weight=40, critical=True, abs_tolerance=0.01),
    MetricConfig("latency_ms", "continuous", "increase", weight=35, abs_tolerance=2.0, rel_tolerance=0.5),
    MetricConfig("score", "continuous", "either", weight=25, abs_tolerance=0.1),
)
"""Defaults: error rate (critical, +1 point), latency (+50 % and +2 ms), score distribution (±0.1)."""


@dataclass(frozen=True)
class JudgeConfig:
    """Thresholds of the judge.

    Attributes:
        metrics: the metrics, in report order.
        pass_threshold: a score at or above this passes the stage.
        marginal_threshold: a score at or above this (and below ``pass_threshold``) asks a human.
        alpha: significance level of every test.
        on_no_data: decision when no metric has enough data.
    """

    metrics: tuple[MetricConfig, ...] = DEFAULT_METRICS
    pass_threshold: float = 95.0
    marginal_threshold: float = 75.0
    alpha: float = 0.05
    on_no_data: Decision = "marginal"

    def __post_init__(self) -> None:
        problems = []
        if not 0 <= self.marginal_threshold <= self.pass_threshold <= 100:
            problems.append(
                "thresholds must satisfy 0 <= marginal_threshold <= pass_threshold <= 100, got "
                f"marginal {self.marginal_threshold!r}, pass {self.pass_threshold!r}"
            )
        if not 0 < self.alpha < 1:
            problems.append(f"alpha must be between 0 and 1, got {self.alpha!r}")
        if self.on_no_data not in get_args(Decision):
            problems.append(f"on_no_data must be one of {list(get_args(Decision))}, got {self.on_no_data!r}")
        names = [m.name for m in self.metrics]
        if not names:
            problems.append("at least one metric is needed")
        if len(set(names)) != len(names):
            problems.append(f"duplicate metric names in {names}")
        if problems:
            raise InvalidPolicy("judge: " + "; ".join(problems))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> JudgeConfig:
        """Build a config from a policy's ``judge`` section; missing keys keep their defaults.

        ``metrics`` maps a metric name to its settings; a default metric named there is updated, a
        new name adds a metric, and ``{name: null}`` drops a default metric.

        Args:
            data: the section (or None for all defaults).

        Returns:
            The config.

        Raises:
            InvalidPolicy: unknown keys or invalid values, named.
        """
        data = dict(data or {})
        known = {"metrics", "pass_threshold", "marginal_threshold", "alpha", "on_no_data"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InvalidPolicy(f"judge: unknown keys {unknown}; known: {sorted(known)}")
        metrics = {m.name: m for m in DEFAULT_METRICS}
        raw_metrics = data.pop("metrics", None) or {}
        if not isinstance(raw_metrics, Mapping):
            raise InvalidPolicy("judge.metrics must be a mapping of metric name to settings")
        fields = set(MetricConfig.__dataclass_fields__) - {"name"}
        for name, settings in raw_metrics.items():
            if settings is None:
                metrics.pop(str(name), None)
                continue
            if not isinstance(settings, Mapping):
                raise InvalidPolicy(f"judge.metrics.{name} must be a mapping, got {settings!r}")
            bad = sorted(set(settings) - fields)
            if bad:
                raise InvalidPolicy(f"judge.metrics.{name}: unknown keys {bad}; known: {sorted(fields)}")
            base = metrics.get(str(name), MetricConfig(str(name)))
            metrics[str(name)] = replace(base, **dict(settings))
        try:
            return cls(metrics=tuple(metrics.values()), **data)
        except TypeError as e:
            raise InvalidPolicy(f"judge: {e}") from e

    def to_dict(self) -> dict[str, Any]:
        """Return the config as JSON data."""
        d = asdict(self)
        d["metrics"] = [asdict(m) for m in self.metrics]
        return d


@dataclass
class MetricResult:
    """The comparison of one metric (every figure, JSON-serialisable via :meth:`to_dict`)."""

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
    relative_effect: float | None = None
    tolerance: float | None = None
    test: str | None = None
    statistic: float | None = None
    p_value: float | None = None
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


def two_proportion_z_test(x1: int, n1: int, x2: int, n2: int) -> tuple[float, float]:
    """Two-sided z-test of equal proportions with pooled variance.

    Args:
        x1: successes (e.g. errors) in sample 1.
        n1: size of sample 1.
        x2: successes in sample 2.
        n2: size of sample 2.

    Returns:
        ``(z, p_value)``; ``(0.0, 1.0)`` when the pooled proportion is 0 or 1 (no variance).

    Raises:
        ValueError: an empty sample or counts out of range.
    """
    if n1 <= 0 or n2 <= 0 or not 0 <= x1 <= n1 or not 0 <= x2 <= n2:
        raise ValueError(f"invalid counts for a two-proportion test: {x1}/{n1}, {x2}/{n2}")
    pooled = (x1 + x2) / (n1 + n2)
    var = pooled * (1.0 - pooled) * (1.0 / n1 + 1.0 / n2)
    if var <= 0.0:
        return 0.0, 1.0
    z = (x1 / n1 - x2 / n2) / math.sqrt(var)
    return z, float(2.0 * stats.norm.sf(abs(z)))


def _classify(p: float, effect: float, tol: float, alpha: float) -> Classification:
    if p < alpha and effect > tol:
        return "High"
    if p < alpha and effect < -tol:
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
        alpha: significance level.

    Returns:
        The classification with every figure.
    """
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
    if c.size < cfg.min_samples or b.size < cfg.min_samples:
        res.reason = f"fewer than {cfg.min_samples} samples (canary {c.size}, baseline {b.size})"
        return res
    if cfg.kind == "rate":
        if np.any((c != 0) & (c != 1)) or np.any((b != 0) & (b != 1)):
            raise InvalidPolicy(f"metric {cfg.name!r} is a rate: samples must be 0 or 1")
        xc, xb = int(c.sum()), int(b.sum())
        z, p = two_proportion_z_test(xc, int(c.size), xb, int(b.size))
        centre_c, centre_b = xc / c.size, xb / b.size
        res.test, res.statistic = "two-proportion-z", z
    else:
        u = stats.mannwhitneyu(c, b, alternative="two-sided")
        p = float(u.pvalue) if math.isfinite(float(u.pvalue)) else 1.0
        centre_c, centre_b = float(np.median(c)), float(np.median(b))
        res.test, res.statistic = "mann-whitney-u", float(u.statistic)
        res.canary["prob_superiority"] = float(u.statistic) / (c.size * b.size)
    effect = centre_c - centre_b
    tol = max(cfg.abs_tolerance, cfg.rel_tolerance * abs(centre_b))
    res.effect, res.tolerance, res.p_value = effect, tol, p
    res.relative_effect = effect / abs(centre_b) if centre_b != 0 else None
    res.classification = _classify(p, effect, tol, alpha)
    res.failed = _is_failure(res.classification, cfg.direction)
    what = "rate" if cfg.kind == "rate" else "median"
    res.reason = (
        f"{what} {centre_c:.6g} vs {centre_b:.6g} (effect {effect:+.6g}, tolerance {tol:.6g}, "
        f"p={p:.3g}, alpha {alpha}): {res.classification}"
        + (f", bad direction {cfg.direction}" if res.failed else "")
    )
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
        ``reasons``, ``critical_failures``, ``metrics`` (every figure), ``guard_events``, ``config``.
    """
    cfg = config or JudgeConfig()
    results = [compare_metric(m, canary.get(m.name), baseline.get(m.name), cfg.alpha) for m in cfg.metrics]
    with_data = [r for r in results if r.classification != "NoData"]
    total = sum(r.weight for r in with_data)
    score = None if total <= 0 else round(100.0 * sum(r.weight for r in with_data if not r.failed) / total, 2)
    critical = [r.name for r in results if r.failed and r.critical]
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
            "metrics": [r.to_dict() for r in results],
            "guard_events": [dict(e) for e in guard_events],
            "config": cfg.to_dict(),
        }
    )
