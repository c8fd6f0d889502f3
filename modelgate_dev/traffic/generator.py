"""Synthetic live traffic for the router: OIP v2 requests with unit ids, at a paced rate.

Inputs are drawn once from a feature spec (``include.synthetic``) into a pool that requests cycle
through; each request carries ``X-Unit-Id`` from a fixed population (``u0`` .. ``u{n-1}``), so the
router's sticky assignment splits units, not requests. Requests are sent over real HTTP (httpx) at
``rate`` per second with at most ``concurrency`` in flight, and the run is bounded both in count
(``max_requests``) and in time (``duration_s``). :class:`TrafficThread` runs the same loop in a
background thread for tests and the demo.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
import zlib
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from modelgate_dev.traffic.errors import TrafficError

if TYPE_CHECKING:
    from include.synthetic.spec import FeatureSpec

log = logging.getLogger(__name__)

MAX_RATE = 5000.0
"""Highest accepted request rate (requests per second)."""

MAX_DURATION_S = 3600.0
"""Longest accepted run (seconds)."""


@dataclass(frozen=True)
class TrafficConfig:
    """What to send, how fast and for how long.

    Attributes:
        router_url: base URL of the router, e.g. ``http://127.0.0.1:8500``.
        model: model name in ``/v2/models/{model}/infer``.
        rate: requests per second (0 < rate <= :data:`MAX_RATE`).
        duration_s: stop after this many seconds (0 < duration_s <= :data:`MAX_DURATION_S`).
        max_requests: stop after this many requests (None: only the duration bounds the run).
        n_units: size of the unit population the ``X-Unit-Id`` values are drawn from.
        rows_per_request: rows in each request.
        concurrency: requests in flight at most.
        seed: seed of inputs and unit choice (the same seed sends the same sequence).
        pool_size: rows drawn from the spec once and cycled through; larger than any window the drift
            monitor reads, or the repeats of a small pool read as drift (a pool of 2,000 cycled to 8,000
            sampled inputs flagged 4-13 of 30 undrifted features).
        input_name: name of the model's input tensor.
        timeout_s: HTTP timeout of one request.
        api_key: bearer token when the router requires one for scoring.
        fill_missing: value sent for features the spec draws as missing (the router refuses NaN).
        consent_rate: share of units that send ``X-Consent: true`` (fixed per unit and seed); the
            router samples inputs only from consenting units.
        replica_urls: more router replicas (base URLs); request ``i`` goes to replica
            ``i mod (1 + len(replica_urls))``, ``router_url`` being replica 0.
    """

    router_url: str
    model: str
    rate: float = 50.0
    duration_s: float = 10.0
    max_requests: int | None = None
    n_units: int = 1000
    rows_per_request: int = 1
    concurrency: int = 8
    seed: int = 0
    pool_size: int = 100_000
    input_name: str = "input"
    timeout_s: float = 10.0
    api_key: str | None = None
    fill_missing: float = 0.0
    consent_rate: float = 0.9
    replica_urls: tuple[str, ...] = ()

    @property
    def urls(self) -> tuple[str, ...]:
        """Every replica the traffic goes to, ``router_url`` first (duplicates dropped)."""
        return tuple(dict.fromkeys((self.router_url, *self.replica_urls)))

    def __post_init__(self) -> None:
        problems = []
        for what, url in (("router_url", self.router_url), *(("replica_urls", u) for u in self.replica_urls)):
            if not url.startswith(("http://", "https://")):
                problems.append(f"{what} must start with http:// or https://, got {url!r}")
        if not self.model:
            problems.append("model is empty")
        if not 0 < self.rate <= MAX_RATE:
            problems.append(f"rate must be in (0, {MAX_RATE}] requests/s, got {self.rate!r}")
        if not 0 < self.duration_s <= MAX_DURATION_S:
            problems.append(f"duration_s must be in (0, {MAX_DURATION_S}], got {self.duration_s!r}")
        if self.max_requests is not None and self.max_requests < 1:
            problems.append(f"max_requests must be at least 1, got {self.max_requests!r}")
        if not 0.0 <= self.consent_rate <= 1.0:
            problems.append(f"consent_rate must be in [0, 1], got {self.consent_rate!r}")
        for attr in ("n_units", "rows_per_request", "concurrency", "pool_size"):
            if getattr(self, attr) < 1:
                problems.append(f"{attr} must be at least 1, got {getattr(self, attr)!r}")
        if problems:
            raise TrafficError("invalid traffic settings: " + "; ".join(problems))


@dataclass
class TrafficReport:
    """What was sent and what came back.

    Attributes:
        sent: requests sent.
        ok: answered 200.
        server_errors: answered 5xx (the model failed).
        client_errors: answered 4xx.
        transport_errors: no answer (connection refused, timeout).
        by_variant: 200 answers per ``X-Variant``.
        by_version: 200 answers per ``X-Model-Version``.
        by_replica: 200 answers per replica base URL.
        units_by_variant: distinct units seen per variant.
        elapsed_s: wall time of the run.
        rate: achieved requests per second.
        latency_ms: client-side latency quantiles (p50, p90, p99).
    """

    sent: int = 0
    ok: int = 0
    server_errors: int = 0
    client_errors: int = 0
    transport_errors: int = 0
    by_variant: dict[str, int] = field(default_factory=dict)
    by_version: dict[str, int] = field(default_factory=dict)
    by_replica: dict[str, int] = field(default_factory=dict)
    units_by_variant: dict[str, int] = field(default_factory=dict)
    elapsed_s: float = 0.0
    rate: float = 0.0
    latency_ms: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Return the report as JSON data."""
        return asdict(self)


def input_pool(spec: FeatureSpec, n: int, seed: int, fill_missing: float = 0.0) -> np.ndarray:
    """Draw ``n`` rows from a feature spec as a float32 matrix.

    Args:
        spec: the feature spec.
        n: rows to draw.
        seed: seed of the draw.
        fill_missing: value for missing draws.

    Returns:
        A ``float32`` array of shape ``(n, n_features)``.

    Raises:
        TrafficError: a feature is not numeric.
    """
    frame = spec.sample(n, seed)
    non_numeric = [c for c in frame.columns if frame[c].dtype.kind not in "biuf"]
    if non_numeric:
        raise TrafficError(f"the traffic generator sends float tensors; non-numeric features: {non_numeric}")
    x = np.array(frame.to_numpy(dtype=np.float64), copy=True)
    x[~np.isfinite(x)] = fill_missing
    return x.astype(np.float32)


def consents(unit: str, cfg: TrafficConfig) -> bool:
    """Return whether ``unit`` consents: a fixed draw per (seed, unit), true for ``consent_rate`` of units."""
    return zlib.crc32(f"{cfg.seed}:{unit}".encode()) < cfg.consent_rate * 2**32


class _Run:
    def __init__(self, cfg: TrafficConfig, pool: np.ndarray, stop: threading.Event) -> None:
        self.cfg = cfg
        self.pool = pool
        self.stop = stop
        self.report = TrafficReport()
        self.latencies: list[float] = []
        self.units: dict[str, set[str]] = {}
        self.variants: Counter[str] = Counter()
        self.versions: Counter[str] = Counter()
        self.replicas: Counter[str] = Counter()

    def body(self, i: int) -> dict[str, Any]:
        k = self.cfg.rows_per_request
        n = self.pool.shape[0]
        idx = [(i * k + j) % n for j in range(k)]
        rows = self.pool[idx]
        return {
            "inputs": [
                {
                    "name": self.cfg.input_name,
                    "shape": [k, int(rows.shape[1])],
                    "datatype": "FP32",
                    "data": rows.reshape(-1).tolist(),
                }
            ]
        }

    async def one(self, client: Any, i: int, unit: str, sem: asyncio.Semaphore) -> None:
        import httpx

        headers = {"X-Unit-Id": unit, "X-Consent": "true" if consents(unit, self.cfg) else "false"}
        if self.cfg.api_key:
            headers["Authorization"] = f"Bearer {self.cfg.api_key}"
        t = time.perf_counter()
        try:
            r = await client.post(f"/v2/models/{self.cfg.model}/infer", json=self.body(i), headers=headers)
        except httpx.HTTPError as e:
            self.report.transport_errors += 1
            log.debug("request %d failed: %s", i, e)
            return
        finally:
            sem.release()
        self.latencies.append((time.perf_counter() - t) * 1000.0)
        if r.status_code == 200:
            self.report.ok += 1
            variant = r.headers.get("x-variant", "?")
            self.variants[variant] += 1
            self.versions[r.headers.get("x-model-version", "?")] += 1
            self.replicas[str(client.base_url).rstrip("/")] += 1
            self.units.setdefault(variant, set()).add(unit)
        elif r.status_code >= 500:
            self.report.server_errors += 1
        else:
            self.report.client_errors += 1

    async def run(self) -> TrafficReport:
        import httpx

        cfg = self.cfg
        rng = np.random.default_rng(cfg.seed)
        sem = asyncio.Semaphore(cfg.concurrency)
        limits = httpx.Limits(max_connections=cfg.concurrency, max_keepalive_connections=cfg.concurrency)
        t0 = time.monotonic()
        deadline = t0 + cfg.duration_s
        tasks: set[asyncio.Task[None]] = set()
        async with contextlib.AsyncExitStack() as stack:
            clients = [
                await stack.enter_async_context(httpx.AsyncClient(base_url=url, timeout=cfg.timeout_s, limits=limits))
                for url in cfg.urls
            ]
            i = 0
            while not self.stop.is_set() and (cfg.max_requests is None or i < cfg.max_requests):
                due = t0 + i / cfg.rate
                now = time.monotonic()
                if due >= deadline or now >= deadline:
                    break
                if due > now:
                    await asyncio.sleep(due - now)
                await sem.acquire()
                unit = f"u{int(rng.integers(cfg.n_units))}"
                task = asyncio.create_task(self.one(clients[i % len(clients)], i, unit, sem))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                i += 1
            self.report.sent = i
            if tasks:
                await asyncio.wait(tasks, timeout=cfg.timeout_s + 1)
        rep = self.report
        rep.elapsed_s = round(time.monotonic() - t0, 3)
        rep.rate = round(rep.sent / rep.elapsed_s, 2) if rep.elapsed_s > 0 else 0.0
        rep.by_variant = dict(self.variants)
        rep.by_version = dict(self.versions)
        rep.by_replica = dict(self.replicas)
        rep.units_by_variant = {k: len(v) for k, v in self.units.items()}
        if self.latencies:
            q = np.quantile(np.asarray(self.latencies), [0.5, 0.9, 0.99])
            rep.latency_ms = {"p50": float(q[0]), "p90": float(q[1]), "p99": float(q[2])}
        return rep


def run_traffic(cfg: TrafficConfig, spec: FeatureSpec, stop: threading.Event | None = None) -> TrafficReport:
    """Send traffic until the duration or request count is reached (or ``stop`` is set).

    Args:
        cfg: the settings.
        spec: feature spec the inputs are drawn from.
        stop: optional event that ends the run early.

    Returns:
        The report.

    Raises:
        TrafficError: non-numeric features, or no request reached the router at all.
    """
    pool = input_pool(spec, cfg.pool_size, cfg.seed, cfg.fill_missing)
    report = asyncio.run(_Run(cfg, pool, stop or threading.Event()).run())
    log.info("traffic to %s/%s: %s", ", ".join(cfg.urls), cfg.model, report)
    if report.sent and report.transport_errors == report.sent:
        raise TrafficError(f"no request reached the router at {', '.join(cfg.urls)} ({report.sent} attempts)")
    return report


class TrafficThread:
    """Runs :func:`run_traffic` in a background thread.

    Args:
        cfg: the settings.
        spec: feature spec the inputs are drawn from.
    """

    def __init__(self, cfg: TrafficConfig, spec: FeatureSpec) -> None:
        self.cfg = cfg
        self.spec = spec
        self.report: TrafficReport | None = None
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._main, name="traffic", daemon=True)

    def _main(self) -> None:
        try:
            self.report = run_traffic(self.cfg, self.spec, self._stop)
        except BaseException as e:  # handed to the caller of stop()
            self.error = e

    def start(self) -> TrafficThread:
        """Start sending (a second call does nothing); returns self."""
        if not self._thread.is_alive() and self.report is None and self.error is None:
            self._thread.start()
        return self

    def stop(self, timeout: float = 30.0) -> TrafficReport:
        """Stop sending, wait for the thread and return its report.

        Args:
            timeout: seconds to wait for in-flight requests.

        Returns:
            The report.

        Raises:
            TrafficError: the run failed (its cause is chained).
        """
        self._stop.set()
        self._thread.join(timeout)
        if self.error is not None:
            raise TrafficError(f"traffic run failed: {self.error}") from self.error
        if self.report is None:
            raise TrafficError(f"traffic thread did not finish within {timeout}s")
        return self.report

    def __enter__(self) -> TrafficThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
