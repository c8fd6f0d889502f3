"""Reduction of an experiment's window to per-variant, per-day sums, run by the analytics engine.

The reduction is one SQL statement (:mod:`include.analytics.abtest_sql`) run by the configured
engine (DuckDB embedded by default, Spark when ``MODELGATE_ANALYTICS_ENGINE=spark``; see
``docs/analytics.md``). The engine streams the event files of the window (partition, time, model and
shadow filters pushed into the scan), aggregates per unit, joins outcomes and covariates, applies the
exclusions and sums the per-unit terms of every metric's sufficient statistics per variant and per
day of first exposure. What comes back is a few rows per variant and day, whatever the traffic.

Units are excluded when any of their events lacks consent, when they were seen in more than one
variant, or when their variant is not one of the experiment's; for ``unit: unit_id`` events without
a unit id are dropped. Requests without consent reach the files without a unit id (the router drops
it, ``docs/privacy.md``): they are counted as ``events_without_consent``, apart from consenting events
that lack a unit id. The counts of everything excluded are reported.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from include.abtest.errors import AbTestError
from include.analytics import abtest_sql
from include.analytics.engine import AnalyticsError, Engine, Kind, open_engine

if TYPE_CHECKING:
    import pyarrow as pa

    from include.abtest.experiment import Experiment

log = logging.getLogger(__name__)

_EVENT_BASE = ("ts", "model", "variant", "consent", "shadow")


class DataError(AbTestError):
    """Raised when event, outcome or covariate data are missing or lack a needed column."""

    code = "abtest_data_error"


@dataclass
class WindowSums:
    """Per-variant, per-day sums of an experiment window and what was excluded on the way.

    Attributes:
        variants: the experiment's variant names (the rows of every array).
        days: days since the start (the columns); a unit counts on the day of its first event.
        units: analysed units, shape ``(len(variants), days)``.
        terms: ``m<i>_<field>`` → sums of metric ``i``'s per-unit terms, same shape; the fields
            are those of the metric's statistics class (``n`` is :attr:`units`).
        counts: ``events`` (non-shadow events of the model in the window),
            ``events_without_unit``, ``events_without_consent``, ``units_seen``, ``units_in_several_variants``,
            ``units_without_consent``, ``units_unknown_variant``, ``units``, ``outcome_rows``,
            and ``units_without_covariate`` with CUPED.
        window: ``[start, end)`` of the events, ISO strings.
        engine: the engine that reduced the window.
    """

    variants: tuple[str, ...]
    days: int
    units: npt.NDArray[np.float64]
    terms: dict[str, npt.NDArray[np.float64]] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    window: tuple[str, str] = ("", "")
    engine: str = ""

    def metric_sums(self, i: int, fields: list[str]) -> dict[str, dict[str, npt.NDArray[np.float64]]]:
        """Per variant, the per-day sums of metric ``i``'s fields (``n`` included).

        Args:
            i: the metric's index in the experiment.
            fields: the fields of its statistics class.

        Returns:
            variant → field → per-day sums.
        """
        return {
            v: {f: self.units[k] if f == "n" else self.terms[f"m{i}_{f}"][k] for f in fields}
            for k, v in enumerate(self.variants)
        }


def _resolve(path: str, data_root: Path) -> Path:
    p = Path(path)
    return p if p.is_absolute() else data_root / p


def _require(have: dict[str, Kind], needed: list[str], what: str) -> None:
    missing = [c for c in needed if c not in have]
    if missing:
        raise DataError(f"{what} lack columns {missing}; they have {list(have)}")


def _numeric(have: dict[str, Kind], cols: tuple[str, ...], what: str) -> None:
    for c in cols:
        if have[c] not in ("number", "bool"):
            raise DataError(f"{what} column {c!r} is not numeric ({have[c]})")


def _inputs(exp: Experiment, engine: Engine, events_root: str, data_root: Path) -> abtest_sql.Inputs:
    ev_cols = abtest_sql.event_columns(exp)
    out_cols = abtest_sql.outcome_columns(exp)
    needed = [*_EVENT_BASE, exp.unit] + [c for c in ("latency_ms", "score") if c in ev_cols]
    needed += ["status"] if "error" in ev_cols else []
    by_request = exp.outcomes is not None and exp.outcomes.key == "request_id" and bool(out_cols)
    needed += ["request_id"] if by_request else []
    _require(engine.columns("events"), list(dict.fromkeys(needed)), f"events under {events_root}")
    has_ts = False
    if exp.outcomes is not None and out_cols:
        engine.register_table("outcomes", str(_resolve(exp.outcomes.path, data_root)), exp.outcomes.format)
        have = engine.columns("outcomes")
        _require(have, [exp.outcomes.key if by_request else "unit_id", *out_cols],
                 f"outcome records {exp.outcomes.path}")  # fmt: skip
        _numeric(have, out_cols, "outcome")
        has_ts = "ts" in have
    if exp.cuped is not None:
        engine.register_table("covariates", str(_resolve(exp.cuped.path, data_root)), exp.cuped.format)
        have = engine.columns("covariates")
        _require(have, ["unit_id", exp.cuped.column], f"covariates {exp.cuped.path}")
        _numeric(have, (exp.cuped.column,), "covariate")
        repeats = engine.query(abtest_sql.covariate_repeats_sql()).column(0).to_pylist()
        if repeats:
            raise DataError(
                f"covariates {exp.cuped.path}: unit_id repeats ({repeats}); one pre-period value per unit"
            )
    return abtest_sql.Inputs(ev_cols, out_cols if exp.outcomes is not None else (), by_request, has_ts,
                             exp.cuped is not None)  # fmt: skip


def _sums(
    exp: Experiment, rows: pa.Table | None, days: int
) -> tuple[dict[str, npt.NDArray[np.float64]], dict[str, int]]:
    """Scatter the result rows into ``(variant, day)`` arrays and count the exclusions."""
    nv = len(exp.variants)
    aliases = [a for i, m in enumerate(exp.metrics)
               for a, _ in abtest_sql.metric_terms(i, m, m.name in exp.cuped_metrics)]  # fmt: skip
    arrays = {a: np.zeros((nv, days)) for a in ["units", *aliases]}
    by_class = dict.fromkeys(abtest_sql.CLASSES, 0)
    req = dict.fromkeys(abtest_sql.CLASSES, 0)
    cov_missing = 0
    if rows is not None and rows.num_rows:
        d = {c: rows.column(c).to_numpy(zero_copy_only=False) for c in rows.column_names if c != "class"}
        cls = rows.column("class").to_pylist()  # a few rows per variant and day
        for r, name in enumerate(cls):
            by_class[name] += int(d["units"][r])
            req[name] += int(d["requests"][r])
            if name != "ok":
                continue
            cov_missing += int(d["cov_missing"][r])
            k, day = int(d["vcode"][r]), int(d["day"][r])
            for a in arrays:
                v = d[a][r]
                arrays[a][k, day] += 0.0 if v is None else float(v)
    counts = {
        "events": sum(req.values()),
        "events_without_unit": req["no_unit"],
        "events_without_consent": req["anonymous"],
        "units_seen": sum(v for k, v in by_class.items() if k not in ("no_unit", "anonymous")),
        "units_in_several_variants": by_class["several"],
        "units_without_consent": by_class["no_consent"],
        "units_unknown_variant": by_class["unknown"],
        "units": by_class["ok"],
    }
    if exp.cuped is not None:
        counts["units_without_covariate"] = cov_missing
    return arrays, counts


def reduce_window(
    exp: Experiment,
    events_root: Path | str,
    data_root: Path | str,
    end: datetime,
    *,
    engine: str | None = None,
) -> WindowSums:
    """Reduce the experiment's events (and outcomes, covariates) to per-variant, per-day sums.

    Args:
        exp: the experiment.
        events_root: root of the router's event files (``date=.../hour=.../*.parquet``), a folder or URL.
        data_root: folder that relative outcome and covariate paths are resolved against.
        end: end of the window (exclusive, UTC); the window starts at ``exp.start`` and never
            extends past ``exp.end``.
        engine: ``duckdb`` or ``spark``; None reads ``MODELGATE_ANALYTICS_ENGINE``.

    Returns:
        The sums and the exclusion counts.

    Raises:
        DataError: the events, outcomes or covariates are missing, lack a needed column or cannot be read.
        ResidencyViolation: the events belong to another region than ``MODELGATE_REGION``.
    """
    from include.compliance.residency import check_events_region

    check_events_region(str(events_root))  # another region's events are not read
    end = min(end, exp.end)
    data_root = Path(data_root)
    days = abtest_sql.days(exp, end)
    try:
        with open_engine(engine) as eng:
            name = eng.name
            rows = None
            outcome_rows = 0
            # the reduction reads only the contract's original columns: no schema merge over every file
            has_events = eng.register_events(str(events_root), merge_schemas=False)
            if not has_events:
                log.info("no event files under %s yet", events_root)
            if has_events:
                inputs = _inputs(exp, eng, str(events_root), data_root)
                rows = eng.query(abtest_sql.reduction_sql(exp, end, inputs))
                if inputs.outcome_columns:
                    sql = abtest_sql.outcome_rows_sql(end, inputs.outcomes_have_ts)
                    outcome_rows = int(eng.query(sql).column(0)[0].as_py())
    except AnalyticsError as e:
        raise DataError(str(e)) from e
    arrays, counts = _sums(exp, rows, days)
    counts["outcome_rows"] = outcome_rows
    log.info("experiment %s (%s): %s", exp.id, name, counts)
    units = arrays.pop("units")
    return WindowSums(
        variants=tuple(v.name for v in exp.variants), days=days, units=units, terms=arrays, counts=counts,
        window=(exp.start.isoformat(), end.isoformat()), engine=name,
    )  # fmt: skip
