"""The data plane: choose a variant, score, record the outcome (statistics, event, guard).

Nothing here knows HTTP (``router.app`` translates). Building route tables is ``router.tables``, the
change log and state file ``router.changelog``, shadow scoring ``router.shadow``; the assignment
itself is the pure ``router.assignment`` module.
"""

from __future__ import annotations

import logging
import os
import random
import time
from collections.abc import Callable
from time import perf_counter
from typing import Any

import numpy as np
import orjson

from router.changelog import ChangeLog
from router.errors import Forbidden, InferenceError, NotFound
from router.events import EventSink, Record
from router.guard import cut_variant, observe
from router.model import OnnxModel
from router.residency import claim_events_root
from router.routes import ModelRoutes, RoutesDocument
from router.settings import RouterSettings
from router.shadow import ShadowScorer
from router.tables import ModelLoader, ModelTable, RouteTable, VariantRuntime

log = logging.getLogger(__name__)

Feeds = dict[str, np.ndarray]
# (decoded body, chosen model, allow_non_finite) -> (feeds, answer one record per row)
Parser = Callable[[Any, OnnxModel, bool], tuple[Feeds, bool]]


class DataPlane:
    """Holds the current route table and scores requests against it.

    Args:
        settings: validated router settings.
    """

    def __init__(self, settings: RouterSettings) -> None:
        self.settings = settings
        self.log = ChangeLog(settings.state_dir)
        self.loader = ModelLoader(settings)
        self.table = RouteTable(RoutesDocument(), {}, None)
        self.retired: set[tuple[str, str]] = set()
        """(model, variant) pairs this replica served and the current table no longer has: ``/metrics``
        reports their weight as 0 so a rollback reads as "candidate at 0 bp", not as a vanished series."""
        self.ready = False
        self.draining = False
        """Set on SIGTERM: readiness answers 503 from then on."""
        self.close_connections = False
        """Set while draining: answers carry ``Connection: close`` and their connection closes."""
        self.sink: EventSink | None = None
        if settings.events_enabled:
            claim_events_root(settings.events_root, settings.region)
            self.sink = EventSink(
                settings.events_root,
                settings.events_flush_rows,
                settings.events_flush_seconds,
                settings.events_max_buffer,
                writer_nice=settings.events_writer_nice,
                writer_idle=settings.events_writer_idle,
            )
        self.shadow = ShadowScorer(settings.shadow_queue, self._shadow_outcome)
        self._rand = random.random
        self.input_sample = settings.events_input_sample if self.sink is not None else 0.0
        self._seq = 0
        self._rid_prefix = f"{os.getpid():x}-{int(time.time()):x}-"
        self.on_trip: Callable[[str, str, str, dict[str, int]], None] | None = None
        """Set by the control module: how a guard trip is carried out (cut here, then through the store)."""

    # ---------------------------------------------------------------- lifecycle

    def start(self) -> None:
        """Start the event writer and the shadow scorer."""
        if self.sink is not None:
            self.sink.start()
        self.shadow.start()

    def stop(self) -> None:
        """Finish queued shadow work, then flush and stop the event writer."""
        self.shadow.stop()
        if self.sink is not None:
            self.sink.close()

    @property
    def guard_events(self) -> list[dict[str, Any]]:
        """Guard cuts of this process."""
        return self.log.guard_events

    @property
    def load_errors(self) -> list[dict[str, Any]]:
        """The last refused changes."""
        return self.log.load_errors

    @property
    def shadow_skipped(self) -> int:
        """Shadow requests skipped because the queue was full."""
        return self.shadow.skipped

    # ---------------------------------------------------------------- tables

    def build_model(self, name: str, routes: ModelRoutes) -> ModelTable:
        """Load and warm one model's routes (blocking; run off the loop); see ``ModelLoader``."""
        return self.loader.build_model(name, routes)

    def build_table(self, doc: RoutesDocument) -> RouteTable:
        """Build a whole route table (blocking; run off the loop); see ``ModelLoader``."""
        return self.loader.build_table(doc)

    def replace_model(self, name: str, mt: ModelTable | None) -> RouteTable:
        """Return the current table with one model replaced (or removed, ``mt`` None); not installed."""
        return self.loader.replace_model(self.table, name, mt)

    def install(self, table: RouteTable) -> None:
        """Swap in a new table atomically; in-flight requests finish on the old one.

        Args:
            table: the new table.
        """
        table.revision = self.table.revision + 1
        before = _weighted_variants(self.table)
        self.table = table
        now = _weighted_variants(table)
        self.retired = (self.retired | before) - now
        self.loader.release(table)

    # ---------------------------------------------------------------- change log

    def record_change(self, actor: str, action: str, subject: str, before: Any, after: Any) -> dict[str, Any]:
        """Append an accepted change to this replica's change log.

        Args:
            actor: who made it (key name, ``guard``, ``startup``).
            action: ``routes.put``, ``routes.delete``, ``routes.reload``, ``guard.cut``.
            subject: ``routes:<model>`` or ``routes:*``.
            before: state before.
            after: state after.

        Returns:
            The record written.
        """
        return self.log.record(actor, action, subject, before, after, self.table.revision)

    def changes(self, limit: int = 1000) -> list[dict[str, Any]]:
        """Return the last ``limit`` accepted changes, oldest first."""
        return self.log.changes(limit)

    def report_error(self, action: str, subject: str, err: Any) -> None:
        """Remember a refused change for the admin API (``RouterError``)."""
        self.log.report_error(action, subject, err)

    # ---------------------------------------------------------------- request path

    def next_request_id(self) -> str:
        """Return a process-unique request id."""
        self._seq += 1
        return f"{self._rid_prefix}{self._seq:x}"

    def model_table(self, name: str) -> ModelTable:
        """Return the table of a served model.

        Args:
            name: the model name.

        Returns:
            Its table.

        Raises:
            NotFound: no such model.
        """
        mt = self.table.models.get(name)
        if mt is None:
            raise NotFound(f"model {name!r} is not served; served models: {sorted(self.table.models)}")
        return mt

    def choose(
        self, mt: ModelTable, unit_id: bytes | None, pin: str | None, version: str | None
    ) -> VariantRuntime:
        """Pick the variant of a request.

        Args:
            mt: the model's table.
            unit_id: ``X-Unit-Id`` bytes, or None.
            pin: a pinned variant (caller already authorised), or None.
            version: an explicit version or variant from the URL, or None.

        Returns:
            The variant.

        Raises:
            NotFound: the pinned variant or version does not exist.
        """
        if version is not None:
            v = mt.by_version.get(version)
            if v is None:
                raise NotFound(
                    f"model {mt.name!r} has no version or variant {version!r}; known: {sorted(mt.by_version)}"
                )
            return v
        if pin is not None:
            v = mt.variants.get(pin)
            if v is None:
                raise NotFound(f"model {mt.name!r} has no variant {pin!r}; variants: {sorted(mt.variants)}")
            return v
        name = mt.assigner.sticky(unit_id) if unit_id else mt.assigner.random(self._rand())
        return mt.variants[name]

    def score(
        self,
        model: str,
        parse: Parser,
        req: Any,
        unit_id: bytes | None,
        pin: str | None,
        consent: bool,
        request_id: str,
        version: str | None = None,
    ) -> tuple[VariantRuntime, list[np.ndarray], bool]:
        """Route, score, record statistics and the event, feed the guard and the shadow.

        Args:
            model: the model name.
            parse: builds the feeds for the chosen model from ``req`` (raises BadRequest).
            req: the decoded request body.
            unit_id: sticky assignment key.
            pin: pinned variant.
            consent: the ``X-Consent`` flag.
            request_id: the request id.
            version: explicit version/variant (bypasses the split).

        Returns:
            The variant that answered, its outputs, and the ``parse`` flag (answer as records).

        Raises:
            NotFound: unknown model, version or variant.
            BadRequest: the input does not fit the model.
            InferenceError: the model failed.
        """
        mt = self.table.models.get(model)
        if mt is None:
            mt = self.model_table(model)  # raises NotFound
        if version is None and pin is None:
            v = mt.variants[mt.assigner.sticky(unit_id) if unit_id else mt.assigner.random(self._rand())]
        else:
            v = self.choose(mt, unit_id, pin, version)
        m = v.model
        feeds, records = parse(req, m, mt.allow_non_finite)
        t0 = perf_counter()
        try:
            outputs = m.predict(feeds)
        except InferenceError as e:
            self._outcome(mt, v, perf_counter() - t0, False, None, 0, request_id, unit_id, consent, e.message)
            raise
        latency = perf_counter() - t0
        first = outputs[0]
        rows = first.shape[0] if first.ndim else 1
        inputs = None
        if consent and self.input_sample and self._rand() < self.input_sample:
            inputs = sample_inputs(feeds)
        self._outcome(
            mt, v, latency, True, m.score(outputs), rows, request_id, unit_id, consent, None, inputs
        )
        if mt.shadow is not None and self._rand() < mt.shadow_p:
            self.shadow.offer(mt, feeds, request_id, unit_id, consent)
        return v, outputs, records

    def _shadow_outcome(
        self,
        mt: ModelTable,
        v: VariantRuntime,
        latency: float,
        ok: bool,
        score: float | None,
        rows: int,
        request_id: str,
        unit_id: bytes | None,
        consent: bool,
        error: str | None,
    ) -> None:
        self._outcome(mt, v, latency, ok, score, rows, request_id, unit_id, consent, error, None, True)

    def _outcome(
        self,
        mt: ModelTable,
        v: VariantRuntime,
        latency: float,
        ok: bool,
        score: float | None,
        rows: int,
        request_id: str,
        unit_id: bytes | None,
        consent: bool,
        error: str | None,
        inputs: str | None = None,
        shadow: bool = False,
    ) -> None:
        now = time.time()
        v.stats.record(latency, ok, score if score is not None else float("nan"), now)
        if self.sink is not None:
            rec: Record = (
                int(now * 1_000_000),
                request_id,
                mt.name,
                v.name,
                v.version,
                # without consent the event keeps no unit id (docs/privacy.md); inputs are never sampled
                unit_id.decode("utf-8", "replace") if unit_id and consent else None,
                consent,
                latency * 1000.0,
                200 if ok else 500,
                rows,
                score,
                shadow,
                error,
                inputs if consent else None,
            )
            self.sink.append(rec)
        if v.guarded and not shadow:
            observe(self, mt, v, ok, latency)

    def trip(self, model: str, variant: str, reason: str, window: dict[str, int]) -> None:
        """Cut a variant to zero weight, give its weight to the champion, and record why (``router.guard``);
        with a control module, it also writes the cut through the store."""
        if self.on_trip is not None:
            self.on_trip(model, variant, reason, window)
        else:
            cut_variant(self, model, variant, reason, window)

    # ---------------------------------------------------------------- admin reads

    def all_stats(self) -> list[dict[str, Any]]:
        """Return live statistics of every variant served now.

        Returns:
            One snapshot per variant (shadow included), with its current weight.
        """
        out = []
        for mt in self.table.models.values():
            for v in mt.runtimes():
                snap = v.stats.snapshot(self.settings.stats_window_seconds)
                snap["weight_bp"] = v.weight_bp
                snap["champion"] = v.name == mt.champion
                out.append(snap)
        return out

    def check_pin(self, roles: frozenset[str] | None) -> None:
        """Refuse ``X-Variant`` when the caller's key lacks the ``pin`` role.

        Args:
            roles: the roles of the caller's key, None when no valid key was sent.

        Raises:
            Forbidden: the key lacks the role (or no key was sent).
        """
        if roles is None or "pin" not in roles:
            raise Forbidden("X-Variant needs a bearer key with the 'pin' role")


def sample_inputs(feeds: Feeds) -> str:
    """Return the first row of each input as a JSON object ``{name: flat list of values}``.

    Args:
        feeds: the checked inputs of a request.

    Returns:
        The JSON text recorded in the event's ``inputs`` column.
    """
    return orjson.dumps({name: arr[0].ravel().tolist() for name, arr in feeds.items()}).decode()


def _weighted_variants(table: RouteTable) -> set[tuple[str, str]]:
    return {(mt.name, v.name) for mt in table.models.values() for v in mt.variants.values()}
