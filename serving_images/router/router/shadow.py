"""Shadow scoring off the request path: queued requests scored in batches by a background thread."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np

from router.errors import InferenceError
from router.tables import ModelTable, VariantRuntime

log = logging.getLogger(__name__)

SHADOW_TICK = 0.02
"""Seconds between the scorer thread's passes over the queue."""

# (table, shadow variant, latency s, ok, score, rows, request id, unit id, consent, error)
Outcome = Callable[
    [ModelTable, VariantRuntime, float, bool, "float | None", int, str, "bytes | None", bool, "str | None"],
    None,
]


class ShadowScorer:
    """Scores a sampled share of requests on a model's shadow variant, never on the request path.

    The request path only appends to a deque (no wake-up, no lock); the thread wakes every
    ``SHADOW_TICK`` seconds, groups what is queued by shadow variant and scores each group in one
    ``session.run`` on the concatenated rows, which keeps the GIL hand-offs with the event loop few.
    The thread starts with the first shadowed request: a router with no shadow has no thread
    waking 50 times a second to take the GIL from the event loop.

    Args:
        capacity: pending requests; beyond this shadow scoring is skipped and counted.
        outcome: records the outcome of each shadow-scored request (statistics and event).
    """

    def __init__(self, capacity: int, outcome: Outcome) -> None:
        self.capacity = capacity
        self.outcome = outcome
        self.skipped = 0
        self.failed = 0
        self._q: deque[tuple[Any, ...]] = deque()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._running = False
        self._start_lock = threading.Lock()

    def offer(
        self,
        mt: ModelTable,
        feeds: dict[str, np.ndarray],
        request_id: str,
        unit_id: bytes | None,
        consent: bool,
    ) -> None:
        """Queue one request for the model's shadow (called on the request path; O(1)).

        Args:
            mt: the model's table (its shadow is set).
            feeds: the checked inputs.
            request_id: the request id.
            unit_id: the unit id.
            consent: the consent flag.
        """
        if len(self._q) < self.capacity:
            self._q.append((mt, mt.shadow, feeds, request_id, unit_id, consent))
            if self._thread is None and self._running:
                self._start_thread()
        else:
            self.skipped += 1

    def start(self) -> None:
        """Let the scorer run: its thread starts with the first shadowed request."""
        self._running = True
        if self._q:
            self._start_thread()

    def _start_thread(self) -> None:
        with self._start_lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="shadow", daemon=True)
                self._thread.start()

    def stop(self) -> None:
        """Score what is queued, then stop the thread."""
        self._running = False
        with self._start_lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._stop.set()
            thread.join(30)
            self._stop.clear()

    def _loop(self) -> None:
        q = self._q
        while True:
            stopping = self._stop.wait(SHADOW_TICK)
            items = [q.popleft() for _ in range(len(q))]
            groups: dict[int, list[tuple[Any, ...]]] = {}
            for it in items:
                groups.setdefault(id(it[1]), []).append(it)
            for group in groups.values():
                try:
                    self._batch(group)
                except Exception as e:  # a shadow must never take the thread down
                    self.failed += len(group)
                    log.exception("shadow scoring failed: %s", e)
            if stopping and not q:
                return

    def _batch(self, group: list[tuple[Any, ...]]) -> None:
        mt, v = group[0][0], group[0][1]
        sizes = [next(iter(it[2].values())).shape[0] for it in group]
        names = list(group[0][2])
        t0 = time.perf_counter()
        try:
            feeds = {n: np.concatenate([it[2][n] for it in group]) for n in names}
            outputs = v.model.predict(feeds)
        except (InferenceError, ValueError) as e:
            msg = e.message if isinstance(e, InferenceError) else str(e)
            self.failed += len(group)
            per = (time.perf_counter() - t0) / len(group)
            for it in group:
                self.outcome(mt, v, per, False, None, 0, it[3], it[4], it[5], msg)
            return
        per = (time.perf_counter() - t0) / len(group)
        start = 0
        for it, n in zip(group, sizes, strict=True):
            part = [o[start : start + n] for o in outputs]
            start += n
            self.outcome(mt, v, per, True, v.model.score(part), n, it[3], it[4], it[5], None)
