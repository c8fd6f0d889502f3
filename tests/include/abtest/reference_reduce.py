"""Reference (tests only): the former Python reduction of router events to one row per unit.

The product reduces with the analytics engine (``include/abtest/reduce.py``, SQL in
``include/analytics/abtest_sql.py``). This hand-written pyarrow reduction is kept as an independent
second implementation: tests require that both give the same sufficient statistics and decisions.

The analysis never holds the events in memory. A pyarrow dataset scanner reads the event
Parquet files of the experiment's window in record batches, with only the columns the
experiment needs and the partition, time, model and shadow filters pushed into the scan.
Each batch is grouped by (unit, variant) with pyarrow's hash aggregation; the partial
per-unit rows are concatenated and re-aggregated ("compacted") whenever they exceed a bound.
Memory is therefore proportional to the number of units, not the number of events.

Outcome records keyed by ``unit_id`` are streamed and reduced the same way, then joined to
the per-unit events. Outcome records keyed by ``request_id`` are read into memory (with
projection; such labels are usually a sample) and joined to every event batch.

Units are excluded when any of their events lacks consent, when they were seen in more
than one variant, and (for ``unit: unit_id``) events without a unit id are dropped; the
counts of everything excluded are reported.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from include.abtest.reduce import DataError, WindowSums

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.dataset as ds

    from include.abtest.experiment import Experiment

log = logging.getLogger(__name__)

BATCH_ROWS = 1 << 20
"""Rows per scanned record batch."""
COMPACT_ROWS = 4_000_000
"""Raw rows buffered before they are aggregated (with the aggregate so far)."""

USE_THREADS = True
"""Multi-threaded hash aggregation."""

UNIT = "unit"
VARIANT = "variant"
VARIANT_CODE = "variant_code"
VARIANT_CODE_MAX = "variant_code_max"
FIRST_TS = "first_ts"
REQUESTS = "requests"
CONSENT = "consent_all"
OUTCOME_PREFIX = "o_"
EVENT_PREFIX = "e_"
COVARIATE = "covariate"


@dataclass
class UnitReduction:
    """Per-unit rows of an experiment window and what was excluded on the way.

    Attributes:
        table: one row per included unit: ``unit``, ``variant``, ``first_ts``,
            ``requests``, ``e_<col>`` event sums, ``o_<col>`` outcome sums, ``covariate``.
        counts: ``events`` (non-shadow events of the model in the window),
            ``events_without_unit`` (consenting), ``events_without_consent``, ``units_seen``, ``units_without_consent``,
            ``units_in_several_variants``, ``units_unknown_variant``, ``units``,
            ``outcome_rows``, ``units_without_covariate``.
        window: ``[start, end)`` of the events, ISO strings.
    """

    table: pa.Table
    counts: dict[str, int] = field(default_factory=dict)
    window: tuple[str, str] = ("", "")


def _ts_scalar(t: datetime) -> Any:
    import pyarrow as pa

    return pa.scalar(t, type=pa.timestamp("us", tz="UTC"))


def _dataset(path: Path | str, fmt: str, partitioned: bool) -> ds.Dataset:
    import pyarrow as pa
    import pyarrow.dataset as ds

    p = Path(path)
    if not p.exists():
        raise DataError(f"{p} does not exist")
    part = None
    if partitioned:
        part = ds.partitioning(pa.schema([("date", pa.string()), ("hour", pa.string())]), flavor="hive")
    try:
        return ds.dataset(str(p), format=fmt, partitioning=part, exclude_invalid_files=False)
    except (OSError, ValueError) as e:  # pyarrow raises ArrowInvalid (a ValueError) on bad files
        raise DataError(f"cannot open {p} as {fmt}: {e}") from e


def _require(dataset: ds.Dataset, columns: list[str], what: str) -> None:
    missing = [c for c in columns if c not in dataset.schema.names]
    if missing:
        raise DataError(f"{what} lack columns {missing}; they have {dataset.schema.names}")


def _reaggregate(parts: list[pa.Table], keys: list[str], reagg: dict[str, str]) -> pa.Table:
    import pyarrow as pa

    table = pa.concat_tables(parts, promote_options="none")
    aggs = [(c, fn) for c, fn in reagg.items()]
    out = table.group_by(keys, use_threads=USE_THREADS).aggregate(aggs)
    mapping = {f"{c}_{fn}": c for c, fn in aggs}
    return out.rename_columns([mapping.get(n, n) for n in out.column_names]).select(keys + list(reagg))


class _Accumulator:
    """Rows waiting to be aggregated, together with the aggregate so far.

    Raw rows (one per event, or per outcome record) are buffered until ``limit`` of them
    have arrived; then the buffer and the current aggregate are aggregated together in one
    hash aggregation (every aggregation is a sum, min or max, so raw rows and aggregated rows
    combine the same way). Memory: at most ``limit`` raw rows plus one row per unit.
    """

    def __init__(self, keys: list[str], reagg: dict[str, str], limit: int) -> None:
        self.keys = keys
        self.reagg = reagg
        self.limit = limit
        self.parts: list[pa.Table] = []
        self.raw_rows = 0
        self.compactions = 0

    def add(self, part: pa.Table) -> None:
        self.parts.append(part.select(self.keys + list(self.reagg)))
        self.raw_rows += part.num_rows
        if self.raw_rows >= self.limit:
            self.parts = [_reaggregate(self.parts, self.keys, self.reagg)]
            self.raw_rows = 0
            self.compactions += 1

    def result(self) -> pa.Table | None:
        if not self.parts:
            return None
        if self.raw_rows == 0 and len(self.parts) == 1:
            return self.parts[0]
        return _reaggregate(self.parts, self.keys, self.reagg)


def _event_columns(exp: Experiment) -> list[str]:
    cols: list[str] = []
    for m in exp.metrics:
        if m.source == "events":
            cols.extend(c for c in m.columns if c not in cols and c != REQUESTS)
    return cols


def _outcome_columns(exp: Experiment) -> list[str]:
    cols: list[str] = []
    for m in exp.metrics:
        if m.source == "outcomes":
            cols.extend(c for c in m.columns if c not in cols)
    return cols


def _request_outcomes(exp: Experiment, data_root: Path, end: datetime) -> tuple[pa.Table, int]:
    """Outcomes keyed by request id, summed per request, in memory."""
    import pyarrow.compute as pc

    assert exp.outcomes is not None
    cols = _outcome_columns(exp)
    dset = _dataset(_resolve(exp.outcomes.path, data_root), exp.outcomes.format, False)
    _require(dset, ["request_id", *cols], f"outcome records {exp.outcomes.path}")
    flt = pc.field("ts") < _ts_scalar(end) if "ts" in dset.schema.names else None
    table = _as_float(dset.to_table(columns=["request_id", *cols], filter=flt), cols)
    rows = table.num_rows
    summed = table.group_by(["request_id"]).aggregate([(c, "sum") for c in cols])
    summed = summed.rename_columns(
        [n if n == "request_id" else f"{OUTCOME_PREFIX}{n.removesuffix('_sum')}" for n in summed.column_names]
    )
    return summed, rows


def _resolve(path: str, data_root: Path) -> Path:
    p = Path(path)
    return p if p.is_absolute() else data_root / p


def _event_batches(
    exp: Experiment,
    events_root: Path | str,
    start: datetime,
    end: datetime,
    columns: list[str],
    batch_rows: int,
) -> Any:
    import pyarrow.compute as pc

    dset = _dataset(events_root, "parquet", partitioned=True)
    if not dset.files:
        log.info("no event files under %s yet", events_root)
        return iter(())
    base = ["ts", "model", "variant", "consent", "shadow", exp.unit]
    _require(dset, [c for c in base if c != exp.unit] + [exp.unit], f"events under {events_root}")
    flt = (
        (pc.field("date") >= f"{start:%Y-%m-%d}")
        & (pc.field("date") <= f"{end:%Y-%m-%d}")
        & (pc.field("ts") >= _ts_scalar(start))
        & (pc.field("ts") < _ts_scalar(end))
        & (pc.field("model") == exp.model)
        & (pc.field("shadow") == False)  # noqa: E712 (a pyarrow expression, not a Python bool)
    )
    scanner = dset.scanner(columns=columns, filter=flt, batch_size=batch_rows, use_threads=True)
    return scanner.to_batches()


def reduce_units(
    exp: Experiment,
    events_root: Path | str,
    data_root: Path | str,
    end: datetime,
    *,
    batch_rows: int = BATCH_ROWS,
    compact_rows: int = COMPACT_ROWS,
) -> UnitReduction:
    """Reduce the experiment's events (and outcomes, covariates) to one row per unit.

    Args:
        exp: the experiment.
        events_root: root of the router's event files (``date=.../hour=.../*.parquet``).
        data_root: folder that relative outcome and covariate paths are resolved against.
        end: end of the window (exclusive, UTC); the window starts at ``exp.start`` and
            never extends past ``exp.end``.
        batch_rows: rows per scanned batch.
        compact_rows: partial rows kept before re-aggregation (bounds memory with the units).

    Returns:
        The per-unit table and the exclusion counts.

    Raises:
        DataError: the events or outcomes are missing or lack a needed column.
    """

    import pyarrow as pa

    start = exp.start
    end = min(end, exp.end)
    data_root = Path(data_root)
    ev_cols = _event_columns(exp)
    unit_col = exp.unit
    by_request = exp.outcomes is not None and exp.outcomes.key == "request_id" and bool(_outcome_columns(exp))
    req_outcomes, outcome_rows = (None, 0)
    if by_request:
        req_outcomes, outcome_rows = _request_outcomes(exp, data_root, end)
    scan_cols = list(dict.fromkeys(["ts", "variant", "consent", unit_col]))
    scan_cols += [c for c in ("latency_ms", "score") if c in ev_cols]
    if "error" in ev_cols:
        scan_cols.append("status")
    if by_request and "request_id" not in scan_cols:
        scan_cols.append("request_id")
    out_cols = [f"{OUTCOME_PREFIX}{c}" for c in _outcome_columns(exp)] if by_request else []
    ev_sum_cols = [f"{EVENT_PREFIX}{c}" for c in ev_cols]

    reagg: dict[str, str] = {VARIANT_CODE: "min", VARIANT_CODE_MAX: "max", FIRST_TS: "min", REQUESTS: "sum",
                             CONSENT: "min"}  # fmt: skip
    reagg.update({c: "sum" for c in ev_sum_cols + out_cols})
    acc = _Accumulator([UNIT], reagg, compact_rows)
    names = pa.array([v.name for v in exp.variants], pa.string())
    events = 0
    without_unit = 0
    without_consent = 0  # events without a unit id and without consent (the router's anonymous records)
    pending: list[Any] = []
    pending_rows = 0

    def flush() -> None:
        nonlocal without_unit, without_consent, pending_rows
        rows, (nulls, anonymous) = _event_rows(
            pa.Table.from_batches(pending), unit_col, names, ev_cols, req_outcomes, out_cols
        )
        without_unit += nulls
        without_consent += anonymous
        acc.add(rows)
        pending.clear()
        pending_rows = 0

    # Router files are small (one per flush); coalesce their batches.
    for batch in _event_batches(exp, events_root, start, end, scan_cols, batch_rows):
        if batch.num_rows == 0:
            continue
        events += batch.num_rows
        pending.append(batch)
        pending_rows += batch.num_rows
        if pending_rows >= batch_rows:
            flush()
    if pending:
        flush()

    table = acc.result()
    if table is None:
        table = _empty_units(ev_sum_cols + out_cols)
    counts = {"events": events, "events_without_unit": without_unit, "events_without_consent": without_consent,
              "aggregations": acc.compactions + 1}  # fmt: skip
    table, counts = _exclude(table, names, counts)
    if exp.outcomes is not None and not by_request and _outcome_columns(exp):
        table, outcome_rows = _join_unit_outcomes(exp, table, data_root, end, batch_rows, compact_rows)
    counts["outcome_rows"] = outcome_rows
    if exp.cuped is not None:
        table, missing = _join_covariate(exp, table, data_root)
        counts["units_without_covariate"] = missing
    log.info("experiment %s: %s", exp.id, counts)
    return UnitReduction(table=table, counts=counts, window=(start.isoformat(), end.isoformat()))


def _event_rows(
    t: pa.Table,
    unit_col: str,
    names: pa.Array,
    ev_cols: list[str],
    req_outcomes: pa.Table | None,
    out_cols: list[str],
) -> tuple[pa.Table, tuple[int, int]]:
    """One row per event in the aggregation's columns; returns them and the events without unit
    (consenting ones, and those without consent).

    The variant becomes its index in the experiment's variants (``len(variants)`` when
    unknown): its min and max per unit are cheap integer aggregations, and they differ for a
    unit seen in several variants, so a single string key (the unit) is hashed.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    unit = t.column(unit_col)
    nulls = int(unit.null_count)
    anonymous = 0
    if nulls:
        anonymous = int(pc.sum(pc.and_(pc.is_null(unit), pc.invert(t.column("consent")))).as_py() or 0)
        t = t.filter(pc.is_valid(unit))
    code = pc.fill_null(pc.index_in(t.column("variant"), value_set=names), len(names))
    cols: dict[str, Any] = {
        UNIT: t.column(unit_col),
        VARIANT_CODE: code,
        VARIANT_CODE_MAX: code,
        FIRST_TS: t.column("ts"),
        REQUESTS: pa.array(np.ones(t.num_rows, dtype=np.int64)),
        CONSENT: pc.cast(t.column("consent"), pa.int8()),
    }
    for c in ev_cols:
        if c == "error":
            cols[f"{EVENT_PREFIX}error"] = pc.cast(pc.not_equal(t.column("status"), 200), pa.float64())
        else:
            cols[f"{EVENT_PREFIX}{c}"] = pc.fill_null(t.column(c), 0.0)
    if req_outcomes is not None:
        cols["request_id"] = t.column("request_id")
    rows = pa.table(cols)
    if req_outcomes is not None:
        rows = rows.join(req_outcomes, "request_id", join_type="left outer", use_threads=True)
        rows = rows.drop_columns(["request_id"])
        for c in out_cols:
            rows = rows.set_column(rows.schema.get_field_index(c), c, pc.fill_null(rows.column(c), 0.0))
    return rows, (nulls - anonymous, anonymous)


def _empty_units(sum_cols: list[str]) -> pa.Table:
    import pyarrow as pa

    fields = [
        (UNIT, pa.string()),
        (VARIANT_CODE, pa.int32()),
        (VARIANT_CODE_MAX, pa.int32()),
        (FIRST_TS, pa.timestamp("us", tz="UTC")),
        (CONSENT, pa.int8()),
        (REQUESTS, pa.int64()),
    ]
    fields += [(c, pa.float64()) for c in sum_cols]
    return pa.schema(fields).empty_table()


def _exclude(table: pa.Table, names: pa.Array, counts: dict[str, int]) -> tuple[pa.Table, dict[str, int]]:
    """Drop units seen in several variants, units without consent and unknown variants."""
    import pyarrow.compute as pc

    def count(mask: Any) -> int:
        return int(pc.sum(mask).as_py() or 0) if table.num_rows else 0

    counts["units_seen"] = table.num_rows
    single = pc.equal(table.column(VARIANT_CODE), table.column(VARIANT_CODE_MAX))
    counts["units_in_several_variants"] = table.num_rows - count(single)
    table = table.filter(single)
    consent = pc.equal(table.column(CONSENT), 1)
    counts["units_without_consent"] = table.num_rows - count(consent)
    table = table.filter(consent)
    known = pc.less(table.column(VARIANT_CODE), len(names))
    counts["units_unknown_variant"] = table.num_rows - count(known)
    table = table.filter(known)
    variant = names.take(table.column(VARIANT_CODE))
    table = table.drop_columns([VARIANT_CODE, VARIANT_CODE_MAX]).add_column(1, VARIANT, variant)
    counts["units"] = table.num_rows
    return table, counts


def _join_unit_outcomes(
    exp: Experiment, table: pa.Table, data_root: Path, end: datetime, batch_rows: int, compact_rows: int
) -> tuple[pa.Table, int]:
    import pyarrow.compute as pc

    assert exp.outcomes is not None
    cols = _outcome_columns(exp)
    dset = _dataset(_resolve(exp.outcomes.path, data_root), exp.outcomes.format, False)
    _require(dset, ["unit_id", *cols], f"outcome records {exp.outcomes.path}")
    flt = pc.field("ts") < _ts_scalar(end) if "ts" in dset.schema.names else None
    acc = _Accumulator(["unit_id"], {c: "sum" for c in cols}, compact_rows)
    rows = 0
    for batch in dset.scanner(columns=["unit_id", *cols], filter=flt, batch_size=batch_rows).to_batches():
        if batch.num_rows == 0:
            continue
        rows += batch.num_rows
        acc.add(_as_float(_table(batch), cols))
    summed = acc.result()
    names = [f"{OUTCOME_PREFIX}{c}" for c in cols]
    if summed is None:
        import pyarrow as pa

        for n in names:
            table = table.append_column(n, pa.array([0.0] * table.num_rows, pa.float64()))
        return table, 0
    summed = summed.rename_columns(
        ["unit_id" if n == "unit_id" else f"{OUTCOME_PREFIX}{n}" for n in summed.column_names]
    )
    joined = table.join(summed, UNIT, "unit_id", join_type="left outer", use_threads=True)
    for n in names:
        joined = joined.set_column(joined.schema.get_field_index(n), n, pc.fill_null(joined.column(n), 0))
    return joined, rows


def _as_float(table: pa.Table, cols: list[str]) -> pa.Table:
    """Cast outcome columns (bool, int or float) to float64 so their sums never overflow or fail."""
    import pyarrow as pa
    import pyarrow.compute as pc

    for c in cols:
        i = table.schema.get_field_index(c)
        if table.schema.field(i).type != pa.float64():
            try:
                table = table.set_column(i, c, pc.cast(table.column(c), pa.float64()))
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
                raise DataError(f"outcome column {c!r} is not numeric ({table.schema.field(i).type})") from e
    return table


def _table(batch: Any) -> pa.Table:
    import pyarrow as pa

    return pa.Table.from_batches([batch])


def _join_covariate(exp: Experiment, table: pa.Table, data_root: Path) -> tuple[pa.Table, int]:
    import pyarrow.compute as pc

    assert exp.cuped is not None
    dset = _dataset(_resolve(exp.cuped.path, data_root), exp.cuped.format, False)
    _require(dset, ["unit_id", exp.cuped.column], f"covariates {exp.cuped.path}")
    cov = dset.to_table(columns=["unit_id", exp.cuped.column])
    cov = cov.rename_columns(["unit_id", COVARIATE])
    cov = cov.set_column(1, COVARIATE, pc.cast(cov.column(COVARIATE), "float64"))
    joined = table.join(cov, UNIT, "unit_id", join_type="left outer", use_threads=True)
    if joined.num_rows != table.num_rows:  # a repeated unit id multiplies rows in the join
        raise DataError(f"covariates {exp.cuped.path}: unit_id repeats; one pre-period value per unit")
    missing = joined.column(COVARIATE).null_count
    joined = joined.set_column(
        joined.schema.get_field_index(COVARIATE), COVARIATE, pc.fill_null(joined.column(COVARIATE), 0.0)
    )
    return joined, int(missing)


def unit_sums(table: pa.Table, metric: Any, cuped: bool) -> dict[str, Any]:
    """Per-unit terms whose sums are the metric's sufficient statistics (``n`` is all ones)."""

    def col(name: str) -> Any:
        if metric.source == "events":
            c = REQUESTS if name == REQUESTS else f"{EVENT_PREFIX}{name}"
        else:
            c = f"{OUTCOME_PREFIX}{name}"
        return np.asarray(table.column(c).to_numpy(zero_copy_only=False), dtype=np.float64)

    ones = np.ones(table.num_rows, dtype=np.float64)
    if metric.type == "ratio":
        y, x = col(metric.numerator), col(metric.denominator)
        return {"n": ones, "num_sum": y, "num_sum_squares": y * y, "den_sum": x, "den_sum_squares": x * x,
                "cross_sum": x * y}  # fmt: skip
    y = col(metric.column)
    if metric.type == "proportion":
        y = (y > 0).astype(np.float64)
    if cuped:
        c = np.asarray(table.column(COVARIATE).to_numpy(zero_copy_only=False), dtype=np.float64)
        return {"n": ones, "sum": y, "sum_squares": y * y, "pre_sum": c, "pre_sum_squares": c * c,
                "cross_sum": y * c}  # fmt: skip
    if metric.type == "proportion":
        return {"n": ones, "successes": y}
    return {"n": ones, "sum": y, "sum_squares": y * y}


def window_sums(exp: Experiment, red: UnitReduction, end: datetime) -> WindowSums:
    """Per-variant, per-day sums of the reference's per-unit rows (numpy), as the engine returns them."""
    from include.analytics.abtest_sql import days as n_days

    days = n_days(exp, end)
    start_us = int(exp.start.timestamp() * 1_000_000)
    t = red.table
    ts = np.asarray(t.column(FIRST_TS).cast("int64").to_numpy(zero_copy_only=False), dtype=np.int64)
    day = np.clip((ts - start_us) // 86_400_000_000, 0, days - 1)
    variant = np.asarray(t.column(VARIANT).to_pylist(), dtype=object)
    names = [v.name for v in exp.variants]
    units = np.zeros((len(names), days))
    terms: dict[str, Any] = {}
    for k, name in enumerate(names):
        mask = variant == name
        units[k] = np.bincount(day[mask], minlength=days)
    for i, m in enumerate(exp.metrics):
        for f, v in unit_sums(t, m, m.name in exp.cuped_metrics).items():
            if f == "n":
                continue
            arr = np.zeros((len(names), days))
            for k, name in enumerate(names):
                mask = variant == name
                arr[k] = np.bincount(day[mask], weights=v[mask], minlength=days)
            terms[f"m{i}_{f}"] = arr
    counts = {k: v for k, v in red.counts.items() if k != "aggregations"}
    return WindowSums(tuple(names), days, units, terms, counts, red.window, "reference")


def assert_same_sums(got: WindowSums, ref: WindowSums, rel: float = 1e-9) -> None:
    """Fail unless two reductions have the same counts, units and sums (``rel`` relative)."""
    assert got.counts == ref.counts, (got.counts, ref.counts)
    assert got.variants == ref.variants and got.days == ref.days
    assert np.array_equal(got.units, ref.units)
    assert sorted(got.terms) == sorted(ref.terms)
    for k, v in ref.terms.items():
        err = np.abs(got.terms[k] - v)
        assert np.all(err <= rel * np.abs(v)), (
            f"{k}: max relative error {np.max(err / np.maximum(np.abs(v), 1e-300))}"
        )
