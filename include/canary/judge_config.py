"""Configuration of the canary judge: metrics, thresholds and what a metric without data does.

Defaults (:data:`DEFAULT_METRICS`, :class:`JudgeConfig`) and every rule are documented in
``docs/canary.md``; policies set them under ``canary.judge`` (``include/canary/policy.py``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal, get_args

from include.canary.errors import InvalidPolicy

Classification = Literal["Pass", "High", "Low", "NoData"]
Direction = Literal["increase", "decrease", "either"]
Kind = Literal["rate", "continuous", "drift"]
Decision = Literal["pass", "marginal", "rollback"]
Effect = Literal["shift", "cles", "mean_ratio"]
NoDataAction = Literal["fail", "marginal", "ignore"]


@dataclass(frozen=True)
class MetricConfig:
    """How one metric is judged.

    Attributes:
        name: metric name (``error_rate``, ``latency_ms``, ``score`` or any outcome metric).
        kind: ``rate`` (0/1 samples: Fisher test, Newcombe-Wilson interval), ``continuous`` (rank-sum
            test, Hodges-Lehmann shift and interval) or ``drift`` (rows of input features, canary against
            baseline with :mod:`include.drift`: High when any feature drifted).
        direction: which change is bad: ``increase``, ``decrease`` or ``either``.
        weight: share of the stage score (any non-negative number; weights are normalised).
        critical: a failure of this metric fails the stage whatever the score.
        abs_tolerance: smallest effect (in the metric's unit) that counts.
        rel_tolerance: smallest effect relative to the baseline's centre (rate or median) that counts.
        min_samples: samples needed on each side, below which the metric is ``NoData``.
        effect: what decides a continuous metric: ``shift`` (the Hodges-Lehmann interval excludes the
            tolerance band), ``cles`` (significant and the probability of superiority reaches
            ``min_cles``) or ``mean_ratio`` (significant and the ratio of means reaches
            ``min_mean_ratio``). Use ``cles`` or ``mean_ratio`` for mostly-zero metrics, whose shift is 0.
        min_cles: probability of superiority ``P(canary > baseline) + P(=)/2`` that counts as High
            (``1 - min_cles`` counts as Low); 0.56 is Vargha and Delaney's "small" effect.
        min_mean_ratio: ratio of means ``canary / baseline`` that counts as High (its inverse as Low).
        on_no_data: what a metric with too few samples does to the stage: ``fail`` (rollback),
            ``marginal`` (a human decides) or ``ignore``; None means ``fail`` for critical metrics and
            ``ignore`` otherwise.
    """

    name: str
    kind: Kind = "continuous"
    direction: Direction = "increase"
    weight: float = 1.0
    critical: bool = False
    abs_tolerance: float = 0.0
    rel_tolerance: float = 0.0
    min_samples: int = 50
    effect: Effect = "shift"
    min_cles: float = 0.56
    min_mean_ratio: float = 1.2
    on_no_data: NoDataAction | None = None

    @property
    def no_data_action(self) -> NoDataAction:
        """What NoData does, with the default resolved (``fail`` for critical metrics)."""
        if self.on_no_data is not None:
            return self.on_no_data
        return "fail" if self.critical else "ignore"

    def __post_init__(self) -> None:
        problems = [] if self.name else ["name is empty"]
        for attr, allowed in (
            ("kind", get_args(Kind)),
            ("direction", get_args(Direction)),
            ("effect", get_args(Effect)),
            ("on_no_data", (*get_args(NoDataAction), None)),
        ):
            if getattr(self, attr) not in allowed:
                problems.append(f"{attr} must be one of {list(allowed)}, got {getattr(self, attr)!r}")
        numbers = (
            ("weight", "a non-negative number", lambda v: v >= 0),
            ("abs_tolerance", "a non-negative number", lambda v: v >= 0),
            ("rel_tolerance", "a non-negative number", lambda v: v >= 0),
            ("min_cles", "a number in (0.5, 1]", lambda v: 0.5 < v <= 1),
            ("min_mean_ratio", "a number > 1", lambda v: v > 1),
        )
        for attr, what, ok in numbers:
            value = getattr(self, attr)
            if isinstance(value, bool) or not isinstance(value, int | float) or not ok(value):
                problems.append(f"{attr} must be {what}, got {value!r}")
        if self.effect != "shift" and self.kind != "continuous":
            problems.append("effect applies to continuous metrics; a rate is judged on its difference")
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
        alpha: significance level of every test; directional metrics test one-sided at this level,
            and intervals have confidence ``1 - alpha`` (one-sided for directional metrics).
        on_no_data: decision when no metric has enough data (and no metric's own ``on_no_data`` decided).
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
