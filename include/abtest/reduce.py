"""Streaming reduction of router events and outcome records to one row per unit.

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

from include.abtest.errors import AbTestError

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.dataset as ds

    from include.abtest.experiment import Experiment

log = logging.getLogger(__name__)

BATCH_ROWS = 1 << 20
"""Rows per scanned record batch."""
COMPACT_ROWS = 2_000_000
"""Partial per-unit rows kept before they are re-aggregated."""

UNIT = "unit"
VARIANT = "variant"
FIRST_TS = "first_ts"
REQUESTS = "requests"
CONSENT = "consent_all"
OUTCOME_PREFIX = "o_"
EVENT_PREFIX = "e_"
COVARIATE = "covariate"


class DataError(AbTestError):
    """Raised when event, outcome or covariate data are missing or lack a needed column."""

    code = "abtest_data_error"


@dataclass
class UnitReduction:
    """Per-unit rows of an experiment window and what was excluded on the way.

    Attributes:
        table: one row per included unit: ``unit``, ``variant``, ``first_ts``,
            ``requests``, ``e_<col>`` event sums, ``o_<col>`` outcome sums, ``covariate``.
        counts: ``events`` (non-shadow events of the model in the window),
            ``events_without_unit``, ``units_seen``, ``units_without_consent``,
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
    out = table.group_by(keys, use_threads=True).aggregate(aggs)
    mapping = {f"{c}_{fn}": c for c, fn in aggs}
    return out.rename_columns([mapping.get(n, n) for n in out.column_names]).select(keys + list(reagg))


class _Accumulator:
    """Partial aggregates of batches, compacted when they grow past ``limit`` rows."""

    def __init__(self, keys: list[str], reagg: dict[str, str], limit: int) -> None:
        self.keys = keys
        self.reagg = reagg
        self.limit = limit
        self.parts: list[pa.Table] = []
        self.rows = 0
        self.compactions = 0

    def add(self, part: pa.Table) -> None:
        self.parts.append(part.select(self.keys + list(self.reagg)))
        self.rows += part.num_rows
        if self.rows > self.limit and len(self.parts) > 1:
            merged = _reaggregate(self.parts, self.keys, self.reagg)
            self.parts, self.rows = [merged], merged.num_rows
            self.compactions += 1
            # grow the bound when units alone exceed it, so compaction stays amortised
            self.limit = max(self.limit, 2 * merged.num_rows)

    def result(self) -> pa.Table | None:
        if not self.parts:
            return None
        if len(self.parts) == 1:
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

    reagg: dict[str, str] = {FIRST_TS: "min", REQUESTS: "sum", CONSENT: "min"}
    reagg.update({c: "sum" for c in ev_sum_cols + out_cols})
    acc = _Accumulator([UNIT, VARIANT], reagg, compact_rows)
    events = 0
    without_unit = 0
    for batch in _event_batches(exp, events_root, start, end, scan_cols, batch_rows):
        if batch.num_rows == 0:
            continue
        events += batch.num_rows
        part, nulls = _reduce_batch(batch, unit_col, ev_cols, req_outcomes, out_cols)
        without_unit += nulls
        acc.add(part)

    table = acc.result()
    if table is None:
        table = _empty_units(ev_sum_cols + out_cols)
    counts = {"events": events, "events_without_unit": without_unit, "compactions": acc.compactions}
    table, counts = _exclude(exp, table, counts)
    if exp.outcomes is not None and not by_request and _outcome_columns(exp):
        table, outcome_rows = _join_unit_outcomes(exp, table, data_root, end, batch_rows, compact_rows)
    counts["outcome_rows"] = outcome_rows
    if exp.cuped is not None:
        table, missing = _join_covariate(exp, table, data_root)
        counts["units_without_covariate"] = missing
    log.info("experiment %s: %s", exp.id, counts)
    return UnitReduction(table=table, counts=counts, window=(start.isoformat(), end.isoformat()))


def _reduce_batch(
    batch: Any, unit_col: str, ev_cols: list[str], req_outcomes: pa.Table | None, out_cols: list[str]
) -> tuple[pa.Table, int]:
    """Group one event batch by (unit, variant); returns the partial rows and the events without unit."""
    import pyarrow as pa
    import pyarrow.compute as pc

    t = pa.Table.from_batches([batch])
    unit = t.column(unit_col)
    nulls = int(unit.null_count)
    if nulls:
        t = t.filter(pc.is_valid(unit))
    cols: dict[str, Any] = {
        UNIT: t.column(unit_col),
        VARIANT: t.column("variant"),
        "ts": t.column("ts"),
        "consent": pc.cast(t.column("consent"), pa.int8()),
    }
    for c in ev_cols:
        if c == "error":
            cols[f"{EVENT_PREFIX}error"] = pc.cast(pc.not_equal(t.column("status"), 200), pa.int64())
        else:
            cols[f"{EVENT_PREFIX}{c}"] = pc.fill_null(t.column(c), 0.0)
    if req_outcomes is not None:
        cols["request_id"] = t.column("request_id")
    part_in = pa.table(cols)
    if req_outcomes is not None:
        part_in = part_in.join(req_outcomes, "request_id", join_type="left outer", use_threads=True)
        part_in = part_in.drop_columns(["request_id"])
        for c in out_cols:
            part_in = part_in.set_column(
                part_in.schema.get_field_index(c), c, pc.fill_null(part_in.column(c), 0)
            )
    sums = [f"{EVENT_PREFIX}{c}" for c in ev_cols] + out_cols
    aggs = [("ts", "min"), ("consent", "min"), (UNIT, "count")] + [(c, "sum") for c in sums]
    part = part_in.group_by([UNIT, VARIANT], use_threads=True).aggregate(aggs)
    names = {"ts_min": FIRST_TS, "consent_min": CONSENT, f"{UNIT}_count": REQUESTS}
    names.update({f"{c}_sum": c for c in sums})
    return part.rename_columns([names.get(n, n) for n in part.column_names]), nulls


def _empty_units(sum_cols: list[str]) -> pa.Table:
    import pyarrow as pa

    fields = [
        (UNIT, pa.string()),
        (VARIANT, pa.string()),
        (FIRST_TS, pa.timestamp("us", tz="UTC")),
        (CONSENT, pa.int8()),
        (REQUESTS, pa.int64()),
    ]
    fields += [(c, pa.float64()) for c in sum_cols]
    return pa.schema(fields).empty_table()


def _exclude(exp: Experiment, table: pa.Table, counts: dict[str, int]) -> tuple[pa.Table, dict[str, int]]:
    """Drop units in several variants, units without consent and unknown variants."""
    import pyarrow as pa
    import pyarrow.compute as pc

    per_unit = table.group_by([UNIT]).aggregate([(VARIANT, "count")])
    multi = per_unit.filter(pc.greater(per_unit.column(f"{VARIANT}_count"), 1)).column(UNIT)
    counts["units_seen"] = per_unit.num_rows
    counts["units_in_several_variants"] = len(multi)
    if len(multi):
        table = table.filter(pc.invert(pc.is_in(table.column(UNIT), value_set=multi)))
    consent = pc.equal(table.column(CONSENT), 1)
    counts["units_without_consent"] = table.num_rows - pc.sum(consent).as_py() if table.num_rows else 0
    table = table.filter(consent)
    known = pc.is_in(table.column(VARIANT), value_set=pa.array([v.name for v in exp.variants]))
    counts["units_unknown_variant"] = table.num_rows - (pc.sum(known).as_py() or 0) if table.num_rows else 0
    table = table.filter(known)
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
        part = _table(batch)
        part = _as_float(part, cols)
        g = part.group_by(["unit_id"]).aggregate([(c, "sum") for c in cols])
        acc.add(g.rename_columns([n.removesuffix("_sum") for n in g.column_names]))
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
    if pc.count_distinct(cov.column("unit_id")).as_py() != cov.num_rows:
        raise DataError(f"covariates {exp.cuped.path}: unit_id repeats; one pre-period value per unit")
    cov = cov.rename_columns(["unit_id", COVARIATE])
    cov = cov.set_column(1, COVARIATE, pc.cast(cov.column(COVARIATE), "float64"))
    joined = table.join(cov, UNIT, "unit_id", join_type="left outer", use_threads=True)
    missing = joined.column(COVARIATE).null_count
    joined = joined.set_column(
        joined.schema.get_field_index(COVARIATE), COVARIATE, pc.fill_null(joined.column(COVARIATE), 0.0)
    )
    return joined, int(missing)
