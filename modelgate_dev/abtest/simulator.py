"""Traffic simulator for A/B experiments through a real router, with a known right answer.

Units drawn from a population send OIP v2 inference requests to the router with
``X-Unit-Id`` and ``X-Consent`` headers; inputs come from a feature spec
(``include.synthetic.FeatureSpec``) or, without one, from a standard normal. The router
assigns each unit to a variant (sticky) and logs the events. Afterwards the simulator writes
the outcomes: unit ``u`` with propensity ``q_u ~ Beta(c·base, c·(1 - base))`` converts with
probability ``q_u·(1 + lift[variant])``, where the variant is the one the router answered
with (``X-Variant``). The true relative lift of a variant's conversion rate is therefore its
configured lift, and an analysis of the router's events with these outcomes must find it.
It also writes a pre-period covariate per unit for CUPED.
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from include.abtest.errors import AbTestError

log = logging.getLogger(__name__)


class SimulationError(AbTestError):
    """Raised when the router refuses the simulated traffic or cannot be reached."""

    code = "abtest_simulation_error"


@dataclass
class Simulation:
    """What to send and how the population behaves.

    Attributes:
        router_url: base URL of the router.
        model: model name in the router.
        n_units: units in the population.
        requests_per_unit: requests each unit sends.
        lifts: variant name → true relative lift of its conversion rate (others 0).
        base_rate: mean conversion probability without lift.
        concentration: spread of the propensities (lower is wider).
        consent_rate: share of units that send ``X-Consent: true``.
        feature_spec: feature spec JSON for the inputs; None for standard normal inputs.
        n_features: input width without a feature spec (default: from the router's metadata).
        api_key: bearer token, when the router requires one for inference.
        concurrency: requests in flight.
        seed: random seed.
    """

    router_url: str
    model: str
    n_units: int = 1000
    requests_per_unit: int = 2
    lifts: dict[str, float] = field(default_factory=dict)
    base_rate: float = 0.2
    concentration: float = 4.0
    consent_rate: float = 1.0
    feature_spec: str | None = None
    n_features: int | None = None
    api_key: str | None = None
    concurrency: int = 8
    seed: int = 0


@dataclass
class SimulationResult:
    """Where the outcomes went and what the router did.

    Attributes:
        outcomes_path: unit-keyed outcome Parquet (``unit_id``, ``converted``, ``revenue``).
        covariates_path: unit-keyed covariates (``unit_id``, ``pre_conversions``).
        variant_of: unit id → variant the router assigned.
        units_per_variant: units per variant (all units, consenting or not).
        requests: requests answered with 200.
        lifts: the configured lifts.
    """

    outcomes_path: Path
    covariates_path: Path
    variant_of: dict[str, str]
    units_per_variant: dict[str, int]
    requests: int
    lifts: dict[str, float]


def _metadata(client: Any, model: str) -> tuple[str, int, str]:
    r = client.get(f"/v2/models/{model}")
    if r.status_code != 200:
        raise SimulationError(f"router has no model {model!r} ({r.status_code}): {r.text[:200]}")
    inp = r.json()["inputs"][0]
    return str(inp["name"]), int(inp["shape"][-1]), str(inp["datatype"])


def simulate(sim: Simulation, out_dir: Path | str) -> SimulationResult:
    """Send the population's requests through the router and write outcomes with a known lift.

    Args:
        sim: the simulation.
        out_dir: where ``outcomes.parquet`` and ``covariates.parquet`` go.

    Returns:
        Paths, the router's assignment and counts.

    Raises:
        SimulationError: the router is unreachable or refuses a request.
    """
    import httpx
    import pyarrow as pa

    rng = np.random.default_rng(sim.seed)
    headers = {"Authorization": f"Bearer {sim.api_key}"} if sim.api_key else {}
    units = [f"sim-{sim.seed}-{i}" for i in range(sim.n_units)]
    consent = rng.random(sim.n_units) < sim.consent_rate
    q = rng.beta(sim.concentration * sim.base_rate, sim.concentration * (1 - sim.base_rate), size=sim.n_units)
    total = sim.n_units * sim.requests_per_unit
    try:
        with httpx.Client(base_url=sim.router_url, timeout=30, headers=headers) as client:
            name, width, dtype = _metadata(client, sim.model)
            rows = _inputs(sim, width, total)

            def send(k: int) -> tuple[int, str]:
                u = k % sim.n_units
                body = {"inputs": [{"name": name, "shape": [1, width], "datatype": dtype,
                                    "data": rows[k].tolist()}]}  # fmt: skip
                r = client.post(f"/v2/models/{sim.model}/infer", json=body,
                                headers={"X-Unit-Id": units[u], "X-Consent": "true" if consent[u] else "false"})  # fmt: skip
                if r.status_code != 200:
                    raise SimulationError(
                        f"router answered {r.status_code} for unit {units[u]}: {r.text[:200]}"
                    )
                return u, r.headers["x-variant"]

            with ThreadPoolExecutor(max_workers=sim.concurrency) as pool:
                answers = list(pool.map(send, range(total)))
    except httpx.HTTPError as e:
        raise SimulationError(f"router at {sim.router_url} unreachable: {e}") from e
    variant_of: dict[str, str] = {}
    for u, v in answers:
        if variant_of.setdefault(units[u], v) != v:
            raise SimulationError(f"unit {units[u]} was assigned to two variants; assignment is not sticky")
    arm = [variant_of[u] for u in units]
    lift = np.array([sim.lifts.get(v, 0.0) for v in arm])
    converted = rng.random(sim.n_units) < np.clip(q * (1 + lift), 0, 1)
    revenue = np.where(converted, rng.gamma(2.0, 10.0, sim.n_units), 0.0)
    out = Path(out_dir)
    outcomes = pa.table({"unit_id": units, "converted": converted.astype(np.int8), "revenue": revenue})
    covariates = pa.table({"unit_id": units, "pre_conversions": rng.poisson(20 * q).astype(np.float64)})
    _write(outcomes, out / "outcomes.parquet")
    _write(covariates, out / "covariates.parquet")
    per: dict[str, int] = {}
    for v in arm:
        per[v] = per.get(v, 0) + 1
    log.info("simulated %d requests of %d units: %s", total, sim.n_units, per)
    return SimulationResult(out / "outcomes.parquet", out / "covariates.parquet", variant_of, per, total,
                            dict(sim.lifts))  # fmt: skip


def _inputs(sim: Simulation, width: int, n: int) -> np.ndarray:
    if sim.feature_spec:
        from include.synthetic import FeatureSpec

        frame = FeatureSpec.from_json(sim.feature_spec).sample(n, seed=sim.seed)
        x = frame.to_numpy(dtype=np.float32)
        if x.shape[1] != width:
            raise SimulationError(f"feature spec has {x.shape[1]} features, the model takes {width}")
        return x
    return np.random.default_rng(sim.seed + 1).normal(size=(n, sim.n_features or width)).astype(np.float32)


def _write(table: Any, path: Path) -> None:
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, path)
