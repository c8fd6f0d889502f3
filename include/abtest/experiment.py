"""Experiment declarations: one YAML file per experiment under ``experiments/``.

An :class:`Experiment` names the model, the router variants and their expected weights, the
randomisation unit, the metrics (primary, secondary, guardrails, each with the direction that
is good), alpha, the minimum detectable effect, the minimum sample, the maximum duration, the
CUPED covariate and whether intervals are sequential. Files are validated with pydantic; a bad
file raises :class:`InvalidExperiment` whose message names the file and every problem.
See ``docs/experiments.md`` for the format.
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from include.abtest.errors import AbTestError

log = logging.getLogger(__name__)

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
"""Experiment ids, variant and metric names (the router's variant-name rule)."""

EVENT_COLUMNS = ("requests", "latency_ms", "score", "error")
"""Per-event quantities a metric may read from the router's events (``source: events``).

``requests`` is 1 per event, ``error`` is 1 when ``status`` is not 200.
"""


class InvalidExperiment(AbTestError):
    """Raised when an experiment file is missing, not YAML, or fails validation."""

    code = "invalid_experiment"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Variant(_Strict):
    """One arm: a router variant of the model and its expected share of units."""

    name: str = Field(pattern=NAME_PATTERN)
    """Router variant name (the ``variant`` column of the events)."""
    weight: float = Field(gt=0)
    """Expected traffic weight (any positive scale; the SRM check normalises)."""
    model_version: str | None = None
    """Registry version this arm serves; the version promoted when this arm wins."""


class Metric(_Strict):
    """A metric reduced per unit, then per variant.

    ``proportion``: a unit converts when the per-unit sum of ``column`` is above zero.
    ``mean``: the per-unit sum of ``column`` (e.g. revenue per user).
    ``ratio``: per-unit sums of ``numerator`` over ``denominator`` (delta method).
    """

    name: str = Field(pattern=NAME_PATTERN)
    type: Literal["proportion", "mean", "ratio"]
    source: Literal["outcomes", "events"] = "outcomes"
    """Where the columns live: the outcome records or the router's events."""
    column: str | None = None
    numerator: str | None = None
    denominator: str | None = None
    direction: Literal["increase", "decrease"] = "increase"
    """Which way is good: ``increase`` (higher is better) or ``decrease``."""
    difference: Literal["absolute", "relative"] = "relative"

    @model_validator(mode="after")
    def _columns(self) -> Metric:
        if self.type == "ratio":
            if not (self.numerator and self.denominator) or self.column:
                raise ValueError("a ratio metric needs numerator and denominator (and no column)")
            cols = [self.numerator, self.denominator]
        else:
            if not self.column or self.numerator or self.denominator:
                raise ValueError(f"a {self.type} metric needs column (and no numerator/denominator)")
            cols = [self.column]
        if self.source == "events":
            bad = [c for c in cols if c not in EVENT_COLUMNS]
            if bad:
                raise ValueError(f"event metrics read {list(EVENT_COLUMNS)}, not {bad}")
        return self

    @property
    def columns(self) -> tuple[str, ...]:
        """The input columns this metric reads."""
        if self.type == "ratio":
            assert self.numerator and self.denominator
            return (self.numerator, self.denominator)
        assert self.column
        return (self.column,)


class Outcomes(_Strict):
    """Where the outcome records are and how they join the events."""

    path: str
    """Parquet file or folder, or CSV file; relative paths are relative to the data root."""
    format: Literal["parquet", "csv"] = "parquet"
    key: Literal["unit_id", "request_id"] = "unit_id"
    """Join key: ``unit_id`` (conversions per user) or ``request_id`` (labels per prediction)."""


class Cuped(_Strict):
    """CUPED covariate: a pre-period value per unit, from a unit-keyed table."""

    path: str
    """Parquet or CSV table with ``unit_id`` and the covariate column."""
    column: str
    format: Literal["parquet", "csv"] = "parquet"
    metrics: list[str] | None = None
    """Metrics to adjust (mean and proportion metrics); default: the primary metric."""


class Sequential(_Strict):
    """Always-valid intervals (confidence sequences)."""

    enabled: bool = True
    tuning_parameter: float = Field(5000.0, gt=0)


class Experiment(_Strict):
    """One A/B experiment (see ``docs/experiments.md``)."""

    id: str = Field(pattern=NAME_PATTERN)
    model: str = Field(pattern=NAME_PATTERN)
    """Model name in the router (``model`` column of the events) and in the registry."""
    active: bool = True
    variants: list[Variant] = Field(min_length=2)
    control: str | None = None
    """Name of the control variant; default the first variant."""
    unit: Literal["unit_id", "request_id"] = "unit_id"
    """Randomisation unit: ``unit_id`` (``X-Unit-Id``) or ``request_id``."""
    start: datetime
    """Start of the experiment window (UTC; a naive time is read as UTC)."""
    max_duration_days: float = Field(14.0, gt=0)
    primary: Metric
    secondary: list[Metric] = Field(default_factory=list)
    guardrails: list[Metric] = Field(default_factory=list)
    alpha: float = Field(0.05, gt=0, lt=1)
    mde: float = Field(gt=0)
    """Minimum detectable effect of the primary metric, on its ``difference`` scale."""
    min_sample: int = Field(100, ge=2)
    """Units per variant before any ship decision."""
    correction: Literal["holm", "bh"] = "holm"
    outcomes: Outcomes | None = None
    cuped: Cuped | None = None
    sequential: Sequential = Field(default_factory=lambda: Sequential(enabled=True, tuning_parameter=5000.0))

    @field_validator("start")
    @classmethod
    def _utc(cls, v: datetime) -> datetime:
        return v.replace(tzinfo=UTC) if v.tzinfo is None else v.astimezone(UTC)

    @model_validator(mode="after")
    def _consistent(self) -> Experiment:
        names = [v.name for v in self.variants]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"variant names repeat: {dup}")
        if self.control is not None and self.control not in names:
            raise ValueError(f"control {self.control!r} is not a variant; variants: {names}")
        metrics = [m.name for m in self.metrics]
        dup = sorted({n for n in metrics if metrics.count(n) > 1})
        if dup:
            raise ValueError(f"metric names repeat: {dup}")
        if any(m.source == "outcomes" for m in self.metrics) and self.outcomes is None:
            raise ValueError("metrics read outcomes but no outcomes source is configured")
        if self.cuped is not None:
            for name in self.cuped_metrics:
                m = self.metric(name) if name in metrics else None
                if m is None:
                    raise ValueError(f"cuped.metrics names unknown metric {name!r}")
                if m.type == "ratio":
                    raise ValueError(f"CUPED applies to mean and proportion metrics, not ratio {name!r}")
        return self

    @property
    def control_name(self) -> str:
        """The control variant's name."""
        return self.control or self.variants[0].name

    @property
    def treatments(self) -> list[Variant]:
        """Every variant except the control, in file order."""
        return [v for v in self.variants if v.name != self.control_name]

    @property
    def metrics(self) -> list[Metric]:
        """Primary, then secondary, then guardrail metrics."""
        return [self.primary, *self.secondary, *self.guardrails]

    @property
    def cuped_metrics(self) -> list[str]:
        """Names of the metrics adjusted with CUPED."""
        if self.cuped is None:
            return []
        return list(self.cuped.metrics) if self.cuped.metrics is not None else [self.primary.name]

    def metric(self, name: str) -> Metric:
        """Return the metric called ``name``.

        Args:
            name: metric name.

        Returns:
            The metric.

        Raises:
            KeyError: no metric has that name.
        """
        for m in self.metrics:
            if m.name == name:
                return m
        raise KeyError(name)

    def role(self, name: str) -> str:
        """Return ``primary``, ``secondary`` or ``guardrail`` for a metric name."""
        if name == self.primary.name:
            return "primary"
        return "secondary" if any(m.name == name for m in self.secondary) else "guardrail"

    def variant(self, name: str) -> Variant:
        """Return the variant called ``name`` (KeyError when absent)."""
        for v in self.variants:
            if v.name == name:
                return v
        raise KeyError(name)

    @property
    def end(self) -> datetime:
        """Start plus the maximum duration."""
        return self.start + timedelta(days=self.max_duration_days)


def _describe(e: ValidationError) -> str:
    parts = []
    for err in e.errors():
        loc = ".".join(str(x) for x in err["loc"]) or "file"
        msg = "unknown field" if err["type"] == "extra_forbidden" else err["msg"]
        parts.append(f"{loc}: {msg.removeprefix('Value error, ')}")
    return "; ".join(parts)


def parse_experiment(doc: Any, source: str = "<experiment>") -> Experiment:
    """Validate one experiment document (a mapping read from YAML or JSON).

    Args:
        doc: the document.
        source: where it came from, for messages.

    Returns:
        The experiment.

    Raises:
        InvalidExperiment: the document is not a mapping or fails validation; the message
            names every problem with its field.
    """
    if not isinstance(doc, dict):
        raise InvalidExperiment(f"{source}: an experiment is a mapping, got {type(doc).__name__}")
    try:
        return Experiment.model_validate(doc)
    except ValidationError as e:
        raise InvalidExperiment(f"{source}: {_describe(e)}") from e


def load_experiment(path: Path | str) -> Experiment:
    """Read and validate one experiment YAML file.

    Args:
        path: the file.

    Returns:
        The experiment.

    Raises:
        InvalidExperiment: the file is missing, not YAML, or invalid.
    """
    p = Path(path)
    try:
        doc = yaml.safe_load(p.read_text())
    except OSError as e:
        raise InvalidExperiment(f"{p}: cannot read experiment file: {e.strerror or e}") from e
    except yaml.YAMLError as e:
        raise InvalidExperiment(f"{p}: not valid YAML: {e}") from e
    exp = parse_experiment(doc, str(p))
    if p.stem != exp.id:
        raise InvalidExperiment(f"{p}: file name must be the experiment id ({exp.id}.yaml)")
    return exp


def load_experiments(folder: Path | str, active_only: bool = True) -> list[Experiment]:
    """Read every ``*.yaml`` experiment in a folder, sorted by id.

    Args:
        folder: the folder (``experiments/``).
        active_only: keep only experiments with ``active: true``.

    Returns:
        The experiments.

    Raises:
        InvalidExperiment: a file is invalid (every bad file is named) or ids repeat.
    """
    d = Path(folder)
    if not d.is_dir():
        raise InvalidExperiment(f"{d}: experiments folder does not exist")
    out: list[Experiment] = []
    problems: list[str] = []
    for p in sorted(d.glob("*.yaml")):
        try:
            out.append(load_experiment(p))
        except InvalidExperiment as e:
            problems.append(e.message)
    if problems:
        raise InvalidExperiment("; ".join(problems))
    return [e for e in out if e.active or not active_only]


_SAFE = re.compile(r"[^A-Za-z0-9_.-]")


def safe_name(text: str) -> str:
    """Return ``text`` with characters outside ``[A-Za-z0-9_.-]`` replaced by ``_`` (file names)."""
    return _SAFE.sub("_", text)
