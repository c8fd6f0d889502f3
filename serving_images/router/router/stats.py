"""Per-variant live statistics and the guard's rolling window, cheap enough for the hot path."""

from __future__ import annotations

import math
import time
from bisect import bisect_left
from typing import Any

# Prometheus histogram bucket upper bounds, seconds.
LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
_RING = 4096


class VariantStats:
    """Counters, a latency histogram, a time-stamped ring of recent outcomes, and the guard window.

    Args:
        model: model name.
        variant: variant name.
        version: model version served by the variant.
        shadow: whether the variant is a shadow.
    """

    def __init__(self, model: str, variant: str, version: str, shadow: bool = False) -> None:
        self.model = model
        self.variant = variant
        self.version = version
        self.shadow = shadow
        self.requests = 0
        self.errors = 0
        self.latency_sum = 0.0
        self.buckets = [0] * (len(LATENCY_BUCKETS) + 1)
        self._ts = [0.0] * _RING
        self._lat = [0.0] * _RING
        self._ok = [True] * _RING
        self._score = [math.nan] * _RING
        self._i = 0
        # guard window: codes 0 ok, 1 error, 2 slow
        self._gw: list[int] = []
        self._gi = 0
        self.g_errors = 0
        self.g_slow = 0

    def record(self, latency: float, ok: bool, score: float, now: float) -> None:
        """Record one outcome.

        Args:
            latency: seconds.
            ok: whether it succeeded.
            score: prediction summary (NaN when none).
            now: wall-clock time.
        """
        self.requests += 1
        if not ok:
            self.errors += 1
        self.latency_sum += latency
        self.buckets[bisect_left(LATENCY_BUCKETS, latency)] += 1
        i = self._i
        self._ts[i] = now
        self._lat[i] = latency
        self._ok[i] = ok
        self._score[i] = score
        self._i = (i + 1) % _RING

    def guard_observe(self, ok: bool, slow: bool, window: int) -> tuple[int, int, int]:
        """Push one outcome into the guard window and return (count, errors, slow) in it.

        Args:
            ok: whether the request succeeded.
            slow: whether it exceeded the latency bound.
            window: the window length.

        Returns:
            Outcomes in the window, failed ones among them, slow ones among them.
        """
        code = 0 if ok and not slow else (1 if not ok else 2)
        gw = self._gw
        if len(gw) < window:
            gw.append(code)
        else:
            gi = self._gi % window
            old = gw[gi]
            if old == 1:
                self.g_errors -= 1
            elif old == 2:
                self.g_slow -= 1
            gw[gi] = code
            self._gi = gi + 1
        if code == 1:
            self.g_errors += 1
        elif code == 2:
            self.g_slow += 1
        return len(gw), self.g_errors, self.g_slow

    def recent(self, limit: int, since: float = 0.0) -> tuple[list[float], float]:
        """Return the latencies (seconds) of the last ``limit`` outcomes recorded at or after ``since``.

        Walks the ring backwards from the newest outcome and stops at the first older one, so the cost is
        the number returned (at most 4096).

        Args:
            limit: the most outcomes to return.
            since: wall-clock time of the oldest outcome wanted.

        Returns:
            The latencies, newest first, and the time of the oldest one returned (``now`` when none).
        """
        out: list[float] = []
        oldest = time.time()
        i = self._i
        for _ in range(min(limit, _RING, self.requests)):
            i = (i - 1) % _RING
            ts = self._ts[i]
            if ts < since or ts <= 0:
                break
            out.append(self._lat[i])
            oldest = ts
        return out, oldest

    def reset_guard(self) -> None:
        """Empty the guard window (after the guard acted or the limits changed)."""
        self._gw = []
        self._gi = 0
        self.g_errors = 0
        self.g_slow = 0

    def snapshot(self, window_seconds: float) -> dict[str, Any]:
        """Return live statistics over the last ``window_seconds`` (up to the last 4096 requests).

        Args:
            window_seconds: the time window.

        Returns:
            Totals and windowed request count, error rate, latency quantiles (ms), prediction mean.
        """
        cut = time.time() - window_seconds
        lat: list[float] = []
        errs = 0
        scores: list[float] = []
        for ts, la, ok, sc in zip(self._ts, self._lat, self._ok, self._score, strict=True):
            if ts >= cut and ts > 0:
                lat.append(la)
                if not ok:
                    errs += 1
                if sc == sc:  # not NaN
                    scores.append(sc)
        lat.sort()
        n = len(lat)

        def q(p: float) -> float | None:
            return round(lat[min(n - 1, int(p * n))] * 1000, 4) if n else None

        return {
            "model": self.model,
            "variant": self.variant,
            "version": self.version,
            "shadow": self.shadow,
            "requests_total": self.requests,
            "errors_total": self.errors,
            "window_seconds": window_seconds,
            "window_requests": n,
            "window_error_rate": (errs / n) if n else None,
            "latency_ms": {"p50": q(0.5), "p90": q(0.9), "p99": q(0.99)},
            "prediction_mean": (sum(scores) / len(scores)) if scores else None,
            "guard_window": {"requests": len(self._gw), "errors": self.g_errors, "slow": self.g_slow},
        }
