"""Synthetic A/B data with a known answer: router events, outcomes and covariates on disk.

Writes what the router and an outcome pipeline would write, without a router: event files in
the router's layout and schema (``docs/events.md``), a unit-keyed outcome table and a
pre-period covariate table. Each unit has a latent conversion propensity ``q ~ Beta(c·base, c·(1 - base))``
(mean ``base``, concentration ``c``); a unit of variant ``v`` converts with probability ``q·(1 + lift_v)``, so the
true relative lift of the conversion rate is ``lift_v``; the pre-period covariate is
``Poisson(pre_scale·q)``, correlated with conversion, for CUPED. Used by the tests and by
``benchmarks/abtest.py``; :mod:`modelgate_dev.abtest.simulator` produces the same kind of data
through a real router.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from include.abtest.errors import InvalidArgument
from modelgate_contracts.events import event_schema

log = logging.getLogger(__name__)


@dataclass
class Population:
    """Who is in the synthetic experiment and how they behave.

    Attributes:
        n_units: units (users).
        variants: variant name → weight.
        lifts: variant name → true relative lift of the conversion rate (control 0).
        base_rate: mean conversion probability without lift.
        concentration: ``c`` of the propensity's Beta distribution; lower spreads units more
            (and makes the pre-period covariate more predictive).
        events_per_unit: mean events per unit (at least 1 each).
        consent_rate: share of units that consent (the rest must be excluded).
        shadow_rate: shadow records per primary record (must be excluded).
        no_unit_rate: share of extra events without a unit id.
        pre_scale: scale of the pre-period covariate.
        latency_ms: variant name → mean latency (default 2 ms).
        model: model name.
        seed: random seed.
    """

    n_units: int
    variants: dict[str, float]
    lifts: dict[str, float] = field(default_factory=dict)
    base_rate: float = 0.1
    concentration: float = 4.0
    events_per_unit: float = 3.0
    consent_rate: float = 0.95
    shadow_rate: float = 0.1
    no_unit_rate: float = 0.01
    pre_scale: float = 20.0
    latency_ms: dict[str, float] = field(default_factory=dict)
    model: str = "churn"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.n_units < 1:
            raise InvalidArgument(f"n_units must be >= 1, got {self.n_units}")
        if len(self.variants) < 2 or any(w <= 0 for w in self.variants.values()):
            raise InvalidArgument("variants needs at least two names with positive weights")
        if not 0 < self.base_rate < 0.5:
            raise InvalidArgument(f"base_rate must lie in (0, 0.5), got {self.base_rate}")
        unknown = set(self.lifts) - set(self.variants)
        if unknown:
            raise InvalidArgument(f"lifts name unknown variants {sorted(unknown)}")
        if any(not -1 < x < 1 for x in self.lifts.values()):
            raise InvalidArgument("every lift must lie in (-1, 1)")


@dataclass
class GeneratedData:
    """Where the data went and the truth behind it.

    Attributes:
        events_root: root of the event files.
        outcomes_path: unit-keyed outcome Parquet file (``unit_id``, ``ts``, ``converted``, ``revenue``).
        covariates_path: unit-keyed covariate file (``unit_id``, ``pre_conversions``).
        events: event records written (primary + shadow + without unit).
        units_per_variant: consenting units per variant.
        true_rates: variant → expected conversion rate of its units.
    """

    events_root: Path
    outcomes_path: Path
    covariates_path: Path
    events: int
    units_per_variant: dict[str, int]
    true_rates: dict[str, float]


def _atomic_parquet(table: Any, path: Path) -> None:
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, path)


def _ids(prefix: str, numbers: np.ndarray) -> Any:
    import pyarrow as pa
    import pyarrow.compute as pc

    return pc.binary_join_element_wise(prefix, pc.cast(pa.array(numbers), pa.string()), "")


def generate(
    pop: Population,
    out_dir: Path | str,
    start: datetime,
    days: float = 7.0,
    chunk_events: int = 2_000_000,
) -> GeneratedData:
    """Write events, outcomes and covariates of a synthetic experiment.

    Args:
        pop: the population.
        out_dir: folder; events go to ``events/``, tables to ``outcomes.parquet`` and
            ``covariates.parquet``.
        start: first event time (UTC).
        days: events spread uniformly over this many days.
        chunk_events: events generated and written per step (bounds memory).

    Returns:
        Paths, counts and the true conversion rates.
    """
    import pyarrow as pa

    out = Path(out_dir)
    rng = np.random.default_rng(pop.seed)
    names = list(pop.variants)
    w = np.array([pop.variants[n] for n in names], dtype=float)
    arm = rng.choice(len(names), size=pop.n_units, p=w / w.sum())
    q = rng.beta(pop.concentration * pop.base_rate, pop.concentration * (1 - pop.base_rate), size=pop.n_units)
    lift = np.array([pop.lifts.get(n, 0.0) for n in names])[arm]
    p_conv = np.clip(q * (1.0 + lift), 0.0, 1.0)
    converted = rng.random(pop.n_units) < p_conv
    consent = rng.random(pop.n_units) < pop.consent_rate
    n_events = 1 + rng.poisson(max(pop.events_per_unit - 1.0, 0.0), size=pop.n_units)
    start = start.astimezone(UTC)
    start_us = int(start.timestamp() * 1_000_000)
    span_us = int(days * 86_400_000_000)
    first_us = start_us + (rng.random(pop.n_units) * span_us * 0.5).astype(np.int64)
    unit_ids = _ids("u", np.arange(pop.n_units))

    # outcomes: one row per converted unit, a day after its first event at most
    conv_idx = np.flatnonzero(converted)
    revenue = rng.gamma(2.0, 10.0, size=conv_idx.size)
    outcomes = pa.table(
        {
            "unit_id": unit_ids.take(pa.array(conv_idx)),
            "ts": pa.array(
                first_us[conv_idx] + rng.integers(0, 86_400_000_000, conv_idx.size),
                pa.timestamp("us", tz="UTC"),
            ),
            "converted": pa.array(np.ones(conv_idx.size, dtype=np.int8)),
            "revenue": pa.array(revenue),
        }
    )
    outcomes_path = out / "outcomes.parquet"
    _atomic_parquet(outcomes, outcomes_path)
    covariates = pa.table(
        {"unit_id": unit_ids, "pre_conversions": pa.array(rng.poisson(pop.pre_scale * q).astype(np.float64))}
    )
    covariates_path = out / "covariates.parquet"
    _atomic_parquet(covariates, covariates_path)

    # events: unit index repeated n_events times, in chunks of units
    events_root = out / "events"
    total = 0
    versions = {n: str(i + 1) for i, n in enumerate(names)}
    lat = np.array([pop.latency_ms.get(n, 2.0) for n in names])
    seq = 0
    u0 = 0
    cum = np.cumsum(n_events)
    while u0 < pop.n_units:
        base = cum[u0 - 1] if u0 else 0
        u1 = int(np.searchsorted(cum, base + chunk_events, side="right"))
        u1 = max(u1, u0 + 1)
        units = np.repeat(np.arange(u0, u1), n_events[u0:u1])
        ts = np.maximum(first_us[units], start_us + (rng.random(units.size) * span_us).astype(np.int64))
        ts[np.r_[True, units[1:] != units[:-1]]] = first_us[units[np.r_[True, units[1:] != units[:-1]]]]
        total += _write_events(pop, events_root, rng, units, ts, arm, consent, names, versions, lat, unit_ids,
                               seq_start=int(base), part=seq)  # fmt: skip
        seq += 1
        u0 = u1
    per_variant = {n: int(((arm == i) & consent).sum()) for i, n in enumerate(names)}
    rates = {n: float(np.mean(q[arm == i] * (1 + pop.lifts.get(n, 0.0)))) if (arm == i).any() else float("nan")
             for i, n in enumerate(names)}  # fmt: skip
    log.info("generated %d events for %d units under %s", total, pop.n_units, events_root)
    return GeneratedData(events_root, outcomes_path, covariates_path, total, per_variant, rates)


def _write_events(
    pop: Population,
    root: Path,
    rng: np.random.Generator,
    units: np.ndarray,
    ts: np.ndarray,
    arm: np.ndarray,
    consent: np.ndarray,
    names: list[str],
    versions: dict[str, str],
    lat: np.ndarray,
    unit_ids: Any,
    seq_start: int,
    part: int,
) -> int:
    import pyarrow as pa
    import pyarrow.compute as pc

    n = units.size
    a = arm[units]
    codes = pa.array(a.astype(np.int32))
    variant = pa.DictionaryArray.from_arrays(codes, pa.array(names)).cast(pa.string())
    version = pa.DictionaryArray.from_arrays(codes, pa.array([versions[x] for x in names])).cast(pa.string())
    model = pa.DictionaryArray.from_arrays(pa.array(np.zeros(n, np.int32)), pa.array([pop.model])).cast(
        pa.string()
    )
    cols: dict[str, Any] = {
        "ts": pa.array(ts, pa.timestamp("us", tz="UTC")),
        "request_id": _ids("r", np.arange(seq_start, seq_start + n)),
        "model": model,
        "variant": variant,
        "model_version": version,
        "unit_id": unit_ids.take(pa.array(units)),
        "consent": pa.array(consent[units]),
        "latency_ms": pa.array(rng.exponential(lat[a])),
        "status": pa.array(np.full(n, 200, dtype=np.int32)),
        "rows": pa.array(np.ones(n, dtype=np.int32)),
        "score": pa.array(rng.random(n)),
        "shadow": pa.array(np.zeros(n, dtype=bool)),
        "error": pa.nulls(n, pa.string()),
        "inputs": pa.nulls(n, pa.string()),
    }
    table = pa.table(cols, schema=event_schema())
    extra = []
    n_shadow = int(n * pop.shadow_rate)
    if n_shadow:
        idx = pa.array(rng.choice(n, n_shadow, replace=False))
        sh = table.take(idx)
        sh = sh.drop_columns(["shadow", "variant"])
        sh = sh.append_column("shadow", pa.array(np.ones(n_shadow, dtype=bool)))
        sh = sh.append_column("variant", pa.array([names[-1]] * n_shadow, pa.string()))
        extra.append(sh.select(table.column_names).cast(table.schema))
    n_none = int(n * pop.no_unit_rate)
    if n_none:
        nu = table.take(pa.array(rng.choice(n, n_none, replace=False)))
        nu = nu.set_column(nu.schema.get_field_index("unit_id"), "unit_id", pa.nulls(n_none, pa.string()))
        extra.append(nu.cast(table.schema))
    if extra:
        table = pa.concat_tables([table, *extra])
    hours = pc.cast(table.column("ts"), pa.int64()).to_numpy() // 3_600_000_000
    order = np.argsort(hours, kind="stable")
    table = table.take(pa.array(order))
    hours = hours[order]
    bounds = np.flatnonzero(np.r_[True, hours[1:] != hours[:-1], True])
    for i in range(bounds.size - 1):
        lo, hi = int(bounds[i]), int(bounds[i + 1])
        d = datetime.fromtimestamp(int(hours[lo]) * 3600, tz=UTC)
        path = root / f"date={d:%Y-%m-%d}" / f"hour={d:%H}" / f"part-gen-{part:06d}.parquet"
        _atomic_parquet(table.slice(lo, hi - lo), path)
    return int(table.num_rows)


def window_end(start: datetime, days: float) -> datetime:
    """End of a generated window: ``start + days`` (helper for analyses of generated data)."""
    return start + timedelta(days=days)
