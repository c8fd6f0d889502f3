"""The control module: follows the routes store, loads models, swaps tables, writes guard cuts through.

The data plane only reads ``plane.table``, an immutable table swapped by one assignment. Everything
that changes it lives here and runs off the request path, on a control thread or in the admin
request's worker thread:

- **Reconcile**: every ``store_poll_seconds`` the thread reads the store's generation (one small
  query). On a new generation it reads a snapshot, loads the models that changed (sha256 verified,
  warmed up), and only then swaps the table. When a model fails to load, the last good table stays
  and the failure is logged and kept for ``GET /admin/errors``; the same generation is retried after
  ``RETRY_FAILED_SECONDS``.
- **Staleness**: when the store cannot be reached the replica keeps serving its last good table and
  reports ``stale`` (readiness body, ``router_routes_stale``) until a poll succeeds again.
- **Admin changes** (``put``/``delete``/``reload``): load and verify locally first, commit to the store
  (route rows + audit records in one transaction), then reconcile to the new generation.
- **Guard trips**: the variant is cut in this replica at once (``router.guard``), then the cut is
  written through the store (actor ``router-guard``; idempotent: a variant already at 0 writes nothing),
  so every replica stops sending it traffic. Until written, the cut is re-applied to every table.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from typing import Any

from modelgate_control import ControlError, StoreUnavailable
from modelgate_control.store import RouteStore
from router.dataplane import DataPlane
from router.errors import BadRequest, ModelLoadError, RouterError, StoreUnreachable
from router.guard import GUARD_ACTOR, cut_document, cut_variant
from router.routes import ModelRoutes, RoutesDocument, load_document, parse_document
from router.tables import ModelTable, RouteTable, dump_routes

log = logging.getLogger(__name__)

RETRY_FAILED_SECONDS = 10.0
"""How long a generation whose models failed to load waits before it is tried again."""


class Control:
    """Owns the store connection, model loading and table swaps, guard write-through and the change log.

    Args:
        plane: the data plane whose table this module swaps.
    """

    def __init__(self, plane: DataPlane) -> None:
        self.plane = plane
        settings = plane.settings
        self.store = RouteStore(
            settings.resolved_store_url(),
            key_file=settings.resolved_audit_key_file(),
            timeout_s=settings.store_timeout_seconds,
        )
        self.poll_seconds = settings.store_poll_seconds
        self.stale = False
        """True while the store cannot be reached (the replica serves its last good table)."""
        self.stale_reason: str | None = None
        self.behind: int | None = None
        """A newer generation that failed to load (the last good table is served), or None."""
        self.lock = threading.Lock()
        """Serialises reconciles and admin changes (held while models load; never on the event loop)."""
        self.swap_lock = threading.Lock()
        """Held only for a swap, so a guard cut on the request path never waits for a model load."""
        self.pending_cuts: dict[tuple[str, str], str] = {}
        """Guard cuts made here and not yet written to the store: (model, variant) -> reason."""
        self._failed: tuple[int, float] | None = None
        self._audited_refusals: set[tuple[str, str]] = set()
        """Residency refusals already written to the audit log (a failed generation is retried every 10 s)."""
        self._default_model: str | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        plane.on_trip = self.trip

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Seed the store from the routes file (models it never held), then serve its current generation.

        Blocking: call it off the event loop.

        Raises:
            RouterError: the routes file is invalid, the store cannot be reached, or a model fails to load.
        """
        path = self.plane.settings.routes
        if path is not None:
            doc = load_document(path)
            self._default_model = doc.default_model
            seed = {name: _dump(r) for name, r in doc.models.items()}
            if seed:
                try:
                    gen = self.store.apply(
                        seed, actor="router-seed", reason=f"seeded from routes file {path}",
                        action="routes.seed", only_missing=True,
                    )
                except (ControlError, OSError) as e:
                    raise StoreUnreachable(f"cannot seed the routes store: {e}") from e
                log.info("routes file %s seeded the store where it held no routes (generation %d)", path, gen)
        with self.lock:
            try:
                self._reconcile(force=True)
            except (ControlError, OSError) as e:
                raise StoreUnreachable(f"cannot read the routes store at start: {e}") from e

    def start_polling(self) -> None:
        """Start the control thread."""
        self._thread = threading.Thread(target=self._run, name="routes-control", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the control thread and close the store's connections."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.store.dispose()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.poll_seconds)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self.poll_once()
            except Exception:  # the thread must survive anything; the next poll tries again
                log.exception("routes control poll failed")

    def poll_once(self) -> None:
        """Write pending guard cuts, then reconcile to the store's generation; mark stale on failure."""
        with self.lock:
            try:
                self._write_cuts()
                self._reconcile(force=False)
            except (StoreUnavailable, OSError) as e:
                if not self.stale:
                    log.error("routes store unreachable, serving generation %d: %s",
                              self.plane.table.generation, e)
                self.stale, self.stale_reason = True, str(e)
                return
            except ControlError as e:
                log.error("routes store refused: %s", e)
                return
        if self.stale:
            log.info("routes store reachable again, serving generation %d", self.plane.table.generation)
        self.stale, self.stale_reason = False, None

    # ------------------------------------------------------------------ reconcile

    def _reconcile(self, force: bool, prebuilt: dict[str, ModelTable] | None = None) -> None:
        """Serve the store's newest generation (models load before the swap); caller holds ``lock``."""
        served = self.plane.table.generation
        if not force and self.store.generation() == served and self.behind is None:
            return
        gen, docs = self.store.snapshot()
        if gen < served:
            raise StoreUnavailable(f"the store is at generation {gen}, behind the {served} served here "
                                   "(a different or restored database?)")
        if gen == served and not force:
            self.behind = None
            return
        if self._failed is not None and self._failed[0] == gen and time.monotonic() < self._failed[1]:
            return
        try:
            table, changed = self._build(gen, docs, prebuilt or {})
        except RouterError as e:
            self.behind = gen
            self._failed = (gen, time.monotonic() + RETRY_FAILED_SECONDS)
            self._refused("routes.follow", f"generation:{gen}", e)
            log.error("generation %d not served, keeping generation %d: %s", gen, served, e.message)
            if force and not self.plane.table.models and served == 0:
                raise
            return
        self.behind, self._failed = None, None
        self._swap(table)
        if prebuilt is None and changed:
            self.plane.record_change("store", "routes.follow", "routes:*", {"generation": served},
                                     {"generation": gen})
        log.info("serving routes generation %d (models %s)", gen, sorted(docs))

    def _build(
        self, gen: int, docs: dict[str, Any], prebuilt: dict[str, ModelTable]
    ) -> tuple[RouteTable, bool]:
        """Build the table of a snapshot, reusing unchanged models; also say whether any model changed."""
        for (model, variant), _reason in list(self.pending_cuts.items()):
            if model in docs:
                _cut_in_doc(docs[model], variant)
        default = self._default_model if self._default_model in docs else None
        doc: RoutesDocument = parse_document({"default_model": default, "models": docs})
        cur = self.plane.table
        models: dict[str, ModelTable] = {}
        changed = set(cur.models) != set(doc.models)
        for name, routes in doc.models.items():
            old = cur.models.get(name)
            ready = prebuilt.get(name)
            if old is not None and old.routes == routes:
                models[name] = old
                continue
            changed = True
            if ready is not None and ready.routes == routes:
                models[name] = ready
            else:
                models[name] = self.plane.build_model(name, routes)
        return self.plane.loader.table_of(doc, models, gen), changed

    def _swap(self, table: RouteTable) -> None:
        with self.swap_lock:
            # a guard cut made while this table loaded: keep it (its runtimes are reused, no load)
            for (model, variant), _reason in list(self.pending_cuts.items()):
                mt = table.models.get(model)
                if mt is not None and variant in mt.variants and mt.variants[variant].weight_bp > 0:
                    data = mt.routes.model_dump(mode="json")
                    cut_document(data, variant, mt.champion)
                    new_mt = self.plane.loader.model_table(
                        model, ModelRoutes.model_validate(data), {r.name: r.model for r in mt.runtimes()}
                    )
                    table = self.plane.loader.replace_model(table, model, new_mt)
            self.plane.install(table)

    # ------------------------------------------------------------------ admin changes (worker threads)

    def put(self, name: str, routes: ModelRoutes, actor: str, reason: str, run_id: str | None) -> tuple[int, Any]:
        """Load and verify one model's routes here, commit them to the store, then serve that generation.

        Args:
            name: the model name.
            routes: its validated routes.
            actor: the admin key's name.
            reason: why (``X-Change-Reason``), recorded in the store row.
            run_id: the run id (``X-Run-Id``), recorded in the row and the audit record.

        Returns:
            The generation carrying the change and the routes as served.

        Raises:
            ModelLoadError: a model cannot be loaded or verified (nothing committed).
            StoreUnreachable: the store cannot be reached (nothing committed).
        """
        with self.lock:
            before = dump_routes(self.plane.table.models[name]) if name in self.plane.table.models else None
            try:
                mt = self.plane.build_model(name, routes)
            except RouterError as e:
                self._refused("routes.put", f"routes:{name}", e)
                raise
            after = dump_routes(mt)
            gen = self._commit({name: after}, actor, reason, run_id, "routes.put")
            self.pending_cuts = {k: v for k, v in self.pending_cuts.items() if k[0] != name}
            self._follow_commit(gen, {name: mt})
            self.plane.record_change(actor, "routes.put", f"routes:{name}", before, after)
        return gen, after

    def delete(self, name: str, actor: str, reason: str, run_id: str | None) -> int:
        """Remove one model from the store, then serve that generation.

        Raises:
            NotFound: the model is not served.
            StoreUnreachable: the store cannot be reached.
        """
        with self.lock:
            before = dump_routes(self.plane.model_table(name))
            gen = self._commit({name: None}, actor, reason, run_id, "routes.delete")
            self._follow_commit(gen, {})
            self.plane.record_change(actor, "routes.delete", f"routes:{name}", before, None)
        return gen

    def reload(self, actor: str, reason: str, run_id: str | None) -> tuple[int, dict[str, Any]]:
        """Make the routes file the desired state of every model (all load before anything commits).

        Raises:
            BadRequest: no routes file.
            RoutesInvalid, ModelLoadError: the file or a model is refused (nothing committed).
            StoreUnreachable: the store cannot be reached.
        """
        path = self.plane.settings.routes
        if path is None:
            raise BadRequest("the router was started without a routes file, so there is nothing to reload")
        with self.lock:
            before = self.plane.table.doc.dump()
            try:
                doc = load_document(path)
                built = {name: self.plane.build_model(name, r) for name, r in doc.models.items()}
            except RouterError as e:
                self._refused("routes.reload", "routes:*", e)
                raise
            self._default_model = doc.default_model
            changes: dict[str, Any] = {name: _dump(r) for name, r in doc.models.items()}
            changes.update({name: None for name in self.plane.table.models if name not in doc.models})
            gen = self._commit(changes, actor, reason, run_id, "routes.reload")
            self._follow_commit(gen, built)
            self.plane.record_change(actor, "routes.reload", "routes:*", before, doc.dump())
        return gen, doc.dump()

    def _follow_commit(self, gen: int, prebuilt: dict[str, ModelTable]) -> None:
        """Serve the generation just committed; if the store is gone again, the poll catches up later."""
        try:
            self._reconcile(force=True, prebuilt=prebuilt)
        except (ControlError, OSError) as e:
            log.warning("generation %d committed but not served yet (the poll retries): %s", gen, e)

    def _refused(self, action: str, subject: str, err: RouterError) -> None:
        """Report a refused change; a residency refusal also goes to the signed audit log (once per decision)."""
        self.plane.report_error(action, subject, err)
        if err.code != "residency_refused":
            return
        seen = (subject if action != "routes.follow" else "follow", err.message)
        if seen in self._audited_refusals:
            return
        try:
            self.store.record(
                f"router-residency@{socket.gethostname()}", "residency.refused", subject,
                {"attempted": action, "region": self.plane.settings.region, "error": err.message},
            )
            self._audited_refusals.add(seen)
        except (ControlError, OSError) as e:  # the refusal stands; only its audit record is missing
            log.error("residency refusal not audited (%s): %s", e, err.message)

    def _commit(self, changes: dict[str, Any], actor: str, reason: str, run_id: str | None, action: str) -> int:
        try:
            return self.store.apply(changes, actor=actor, reason=reason, run_id=run_id, action=action)
        except (ControlError, OSError) as e:
            err = StoreUnreachable(f"routes store unreachable, nothing changed: {e}")
            self.plane.report_error(action, f"routes:{','.join(sorted(changes))}", err)
            raise err from e

    # ------------------------------------------------------------------ guard

    def trip(self, model: str, variant: str, reason: str, window: dict[str, int]) -> None:
        """Cut a tripped variant here at once (request path), then have the control thread write it through.

        Args:
            model: the model.
            variant: the tripped variant.
            reason: why, in words.
            window: the guard window counts.
        """
        with self.swap_lock:
            if cut_variant(self.plane, model, variant, reason, window):
                self.pending_cuts[(model, variant)] = reason
        self._wake.set()

    def _write_cuts(self) -> None:
        """Write pending guard cuts to the store (caller holds ``lock``); a cut already there writes nothing."""
        for (model, variant), reason in list(self.pending_cuts.items()):
            cur = self.store.get(model)
            if cur is not None:
                doc = cur[1]
                champion = _champion(doc)
                if champion is not None and champion != variant and _cut_in_doc(doc, variant):
                    gen = self.store.put(model, doc, actor=GUARD_ACTOR, reason=f"guard: {variant}: {reason}",
                                         action="guard.cut")
                    log.warning("guard cut %s/%s written to the store (generation %d)", model, variant, gen)
            self.pending_cuts.pop((model, variant), None)


def _dump(routes: ModelRoutes) -> dict[str, Any]:
    return routes.model_dump(mode="json", exclude_none=True)


def _champion(doc: dict[str, Any]) -> str | None:
    try:
        return ModelRoutes.model_validate(doc).champion_name()
    except ValueError:
        return None


def _cut_in_doc(doc: dict[str, Any], variant: str) -> bool:
    """Cut ``variant`` in routes data (in place) when it still has weight; return whether it did."""
    champion = _champion(doc)
    if champion is None or champion == variant:
        return False
    return cut_document(doc, variant, champion) > 0


__all__ = ["Control", "ModelLoadError", "StoreUnreachable"]
