"""The data plane: route tables, variant choice, scoring, statistics, guard and events.

Nothing here knows HTTP (the adapters in ``router.app`` translate); the assignment itself is the
pure ``router.assignment`` module.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from time import perf_counter
from typing import Any

import numpy as np

from router.assignment import Assigner
from router.errors import (
    Forbidden,
    InferenceError,
    ModelLoadError,
    NotFound,
    RouterError,
)
from router.events import EventSink, Record
from router.model import OnnxModel
from router.routes import ModelRoutes, RoutesDocument, parse_document
from router.settings import RouterSettings
from router.sources import RegistryResolver, ResolvedModel, is_registry_uri, resolve_local
from router.stats import VariantStats

log = logging.getLogger(__name__)

Feeds = dict[str, np.ndarray]
# (decoded body, chosen model, allow_non_finite) -> (feeds, answer one record per row)
Parser = Callable[[Any, OnnxModel, bool], tuple[Feeds, bool]]
SHADOW_TICK = 0.02


class VariantRuntime:
    """A variant of a model as served now: its loaded model, weight, stats and guard flag."""

    __slots__ = ("guarded", "headers", "model", "name", "stats", "version", "weight_bp")

    def __init__(
        self, name: str, model: OnnxModel, weight_bp: int, stats: VariantStats, guarded: bool
    ) -> None:
        self.name = name
        self.model = model
        self.weight_bp = weight_bp
        self.stats = stats
        self.guarded = guarded
        self.version = model.version
        self.headers = ((b"x-variant", name.encode()), (b"x-model-version", model.version.encode()))


class ModelTable:
    """The serving state of one model: variants, assigner, shadow. Immutable once built."""

    def __init__(
        self,
        name: str,
        routes: ModelRoutes,
        variants: dict[str, VariantRuntime],
        shadow: VariantRuntime | None,
    ) -> None:
        self.name = name
        self.routes = routes
        self.variants = variants
        self.champion = routes.champion_name()
        self.assigner = Assigner(name, routes.salt, [(v.name, v.weight_bp) for v in routes.variants])
        self.shadow = shadow
        self.shadow_p = (routes.shadow.percent / 100.0) if routes.shadow is not None else 0.0
        self.guard = routes.guard
        self.max_latency_s = routes.guard.max_latency_ms / 1000.0
        self.allow_non_finite = routes.allow_non_finite
        self.by_version: dict[str, VariantRuntime] = {}
        for v in [*variants.values(), *([shadow] if shadow else [])]:
            self.by_version.setdefault(v.name, v)
            self.by_version.setdefault(v.version, v)

    def primary(self) -> VariantRuntime:
        """Return the champion's runtime (used for metadata)."""
        return self.variants[self.champion]


@dataclass
class RouteTable:
    """All models served now, and the document they came from."""

    doc: RoutesDocument
    models: dict[str, ModelTable]
    default_model: str | None
    revision: int = 0


@dataclass
class ChangeResult:
    """An accepted change: routes before and after, and the revision."""

    before: Any
    after: Any
    revision: int
    record: dict[str, Any] = field(default_factory=dict)


class DataPlane:
    """Holds the current route table and scores requests against it.

    Args:
        settings: validated router settings.
    """

    def __init__(self, settings: RouterSettings) -> None:
        self.settings = settings
        self.state_dir = settings.state_dir
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.changes_path = self.state_dir / "changes.jsonl"
        self.guard_path = self.state_dir / "guard-events.jsonl"
        self.state_path = self.state_dir / "routes-state.json"
        self.resolver = RegistryResolver(
            settings.resolved_cache_dir(),
            settings.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI"),
            settings.require_sha256,
        )
        self.table = RouteTable(RoutesDocument(), {}, None)
        self._models: dict[tuple[str, str], OnnxModel] = {}
        self._stats: dict[tuple[str, str, str, bool], VariantStats] = {}
        self._models_lock = threading.Lock()
        self.guard_events: list[dict[str, Any]] = []
        self.load_errors: list[dict[str, Any]] = []
        self.ready = False
        self.draining = False
        """Set on SIGTERM: readiness answers 503 from then on."""
        self.close_connections = False
        """Set while draining: answers carry ``Connection: close`` and their connection closes."""
        self.sink: EventSink | None = None
        if settings.events_enabled:
            self.sink = EventSink(
                settings.events_root,
                settings.events_flush_rows,
                settings.events_flush_seconds,
                settings.events_max_buffer,
                writer_nice=settings.events_writer_nice,
            )
        self.shadow_skipped = 0
        self.shadow_failed = 0
        self._shadow_q: deque[tuple[Any, ...]] = deque()
        self._shadow_stop = threading.Event()
        self._shadow_thread: threading.Thread | None = None
        self._rand = random.random
        self._seq = 0
        self._rid_prefix = f"{os.getpid():x}-{int(time.time()):x}-"
        self.origin_sha: str | None = None

    # ---------------------------------------------------------------- lifecycle

    def start(self) -> None:
        """Start the event writer and the shadow scorer threads."""
        if self.sink is not None:
            self.sink.start()
        if self._shadow_thread is None:
            self._shadow_thread = threading.Thread(target=self._shadow_loop, name="shadow", daemon=True)
            self._shadow_thread.start()

    def stop(self) -> None:
        """Finish queued shadow work, then flush and stop the event writer."""
        if self._shadow_thread is not None:
            self._shadow_stop.set()
            self._shadow_thread.join(30)
            self._shadow_thread = None
        if self.sink is not None:
            self.sink.close()

    # ---------------------------------------------------------------- building tables

    def _resolve(self, uri: str) -> ResolvedModel:
        if is_registry_uri(uri):
            return self.resolver.resolve(uri)
        return resolve_local(uri)

    def _load(self, uri: str) -> OnnxModel:
        res = self._resolve(uri)
        key = (str(res.path), res.sha256)
        with self._models_lock:
            cached = self._models.get(key)
        if cached is not None and cached.version == res.version:
            return cached
        model = OnnxModel(res.path, res.sha256, res.version, uri)
        with self._models_lock:
            self._models[key] = model
        log.info("loaded %s (version %s, sha256 %s)", uri, res.version, res.sha256[:12])
        return model

    def _stats_for(self, model: str, variant: str, m: OnnxModel, shadow: bool) -> VariantStats:
        key = (model, variant, m.sha256, shadow)
        st = self._stats.get(key)
        if st is None:
            st = VariantStats(model, variant, m.version, shadow)
            self._stats[key] = st
        return st

    def _model_table(self, name: str, routes: ModelRoutes, models: dict[str, OnnxModel]) -> ModelTable:
        champion = routes.champion_name()
        variants: dict[str, VariantRuntime] = {}
        for v in routes.variants:
            m = models[v.name]
            variants[v.name] = VariantRuntime(
                v.name,
                m,
                v.weight_bp,
                self._stats_for(name, v.name, m, False),
                routes.guard.enabled and v.name != champion,
            )
        shadow = None
        if routes.shadow is not None:
            m = models[routes.shadow.variant]
            shadow = VariantRuntime(
                routes.shadow.variant, m, 0, self._stats_for(name, routes.shadow.variant, m, True), False
            )
        self._check_signatures(name, variants, shadow)
        return ModelTable(name, routes, variants, shadow)

    @staticmethod
    def _check_signatures(
        name: str, variants: dict[str, VariantRuntime], shadow: VariantRuntime | None
    ) -> None:
        ref = next(iter(variants.values())).model
        for v in [*variants.values(), *([shadow] if shadow else [])]:
            if [(i.name, i.dtype) for i in v.model.inputs] != [(i.name, i.dtype) for i in ref.inputs]:
                raise ModelLoadError(
                    f"model {name!r}: variant {v.name!r} has inputs "
                    f"{[i.metadata() for i in v.model.inputs]}, unlike {[i.metadata() for i in ref.inputs]}; "
                    "all variants of a model must take the same inputs"
                )

    def build_model(self, name: str, routes: ModelRoutes) -> ModelTable:
        """Load (or reuse) and warm every model of one model's routes (blocking; run off the loop).

        Args:
            name: the model name.
            routes: its validated routes.

        Returns:
            The new table of that model.

        Raises:
            ModelLoadError: a source cannot be resolved, verified, loaded or warmed up.
        """
        models: dict[str, OnnxModel] = {}
        for v in routes.variants:
            models[v.name] = self._load(v.uri)
        if routes.shadow is not None:
            models[routes.shadow.variant] = self._load(routes.shadow.uri)
        return self._model_table(name, routes, models)

    def build_table(self, doc: RoutesDocument) -> RouteTable:
        """Build a whole route table (blocking; run off the loop).

        Args:
            doc: the validated document.

        Returns:
            The table, not yet installed.

        Raises:
            ModelLoadError: any model fails to load.
        """
        models = {name: self.build_model(name, r) for name, r in doc.models.items()}
        default = doc.default_model or next(iter(doc.models), None)
        if self.settings.default_model and self.settings.default_model in doc.models:
            default = self.settings.default_model
        return RouteTable(doc, models, default)

    def install(self, table: RouteTable) -> None:
        """Swap in a new table atomically; in-flight requests finish on the old one.

        Args:
            table: the new table.
        """
        table.revision = self.table.revision + 1
        self.table = table
        live = {
            (str(v.model.path), v.model.sha256)
            for mt in table.models.values()
            for v in [*mt.variants.values(), *([mt.shadow] if mt.shadow else [])]
        }
        with self._models_lock:
            for key in [k for k in self._models if k not in live]:
                del self._models[key]

    def replace_model(self, name: str, mt: ModelTable | None) -> RouteTable:
        """Return a new table equal to the current one with one model replaced (or removed).

        Args:
            name: the model name.
            mt: its new table, or None to remove it.

        Returns:
            The new table, not yet installed.
        """
        cur = self.table
        models = dict(cur.models)
        docs = dict(cur.doc.models)
        if mt is None:
            models.pop(name, None)
            docs.pop(name, None)
        else:
            models[name] = mt
            docs[name] = mt.routes
        default = cur.doc.default_model if cur.doc.default_model in docs else None
        doc = parse_document(
            {"default_model": default, "models": {k: v.model_dump(mode="json") for k, v in docs.items()}}
        )
        dm = doc.default_model or next(iter(doc.models), None)
        if self.settings.default_model and self.settings.default_model in doc.models:
            dm = self.settings.default_model
        return RouteTable(doc, models, dm)

    # ---------------------------------------------------------------- change log and state

    def record_change(self, actor: str, action: str, subject: str, before: Any, after: Any) -> dict[str, Any]:
        """Append an accepted change to the change log and persist the routes state.

        Args:
            actor: who made it (key name, ``guard``, ``startup``).
            action: ``routes.put``, ``routes.delete``, ``routes.reload``, ``guard.cut``.
            subject: ``routes:<model>`` or ``routes:*``.
            before: state before.
            after: state after.

        Returns:
            The record written.
        """
        rec = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
            + f".{int(time.time() * 1e6) % 1_000_000:06d}Z",
            "actor": actor,
            "action": action,
            "subject": subject,
            "before": before,
            "after": after,
            "revision": self.table.revision,
            "pid": os.getpid(),
        }
        _append_jsonl(self.changes_path, rec)
        self.persist_state()
        log.info("routes change %s %s by %s (revision %d)", action, subject, actor, self.table.revision)
        return rec

    def persist_state(self) -> None:
        """Write the current routes document as the shared state file (atomically)."""
        state = {
            "origin_sha": self.origin_sha,
            "stamp": time.time_ns(),
            "pid": os.getpid(),
            "document": self.table.doc.dump(),
        }
        _write_json(self.state_path, state)

    def changes(self, limit: int = 1000) -> list[dict[str, Any]]:
        """Return the last ``limit`` accepted changes, oldest first.

        Args:
            limit: how many.

        Returns:
            The records.
        """
        return _read_jsonl(self.changes_path)[-limit:]

    def report_error(self, action: str, subject: str, err: RouterError) -> None:
        """Remember a refused change for the admin API.

        Args:
            action: what was attempted.
            subject: what it concerned.
            err: why it was refused.
        """
        rec = {
            "ts": time.time(),
            "action": action,
            "subject": subject,
            "code": err.code,
            "error": err.message,
        }
        self.load_errors.append(rec)
        del self.load_errors[:-100]
        log.error("refused %s %s: %s", action, subject, err.message)

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
        self._outcome(mt, v, latency, True, m.score(outputs), rows, request_id, unit_id, consent, None)
        if mt.shadow is not None and self._rand() < mt.shadow_p:
            if len(self._shadow_q) < self.settings.shadow_queue:
                self._shadow_q.append((mt, mt.shadow, feeds, request_id, unit_id, consent))
            else:
                self.shadow_skipped += 1
        return v, outputs, records

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
                unit_id.decode("utf-8", "replace") if unit_id else None,
                consent,
                latency * 1000.0,
                200 if ok else 500,
                rows,
                score,
                shadow,
                error,
            )
            self.sink.append(rec)
        if v.guarded and not shadow:
            g = mt.guard
            n, errs, slow = v.stats.guard_observe(ok, latency > mt.max_latency_s, g.window)
            if n >= g.min_requests and (errs / n > g.max_error_rate or slow / n > g.max_slow_rate):
                reason = (
                    f"error rate {errs / n:.3f} > {g.max_error_rate}"
                    if errs / n > g.max_error_rate
                    else f"share slower than {g.max_latency_ms} ms {slow / n:.3f} > {g.max_slow_rate}"
                )
                self.trip(mt.name, v.name, reason, {"requests": n, "errors": errs, "slow": slow})

    def trip(self, model: str, variant: str, reason: str, window: dict[str, int]) -> None:
        """Cut a variant to zero weight, give its weight to the champion, and record why.

        Args:
            model: the model.
            variant: the variant to cut.
            reason: why, in words.
            window: the guard window counts that triggered it.
        """
        mt = self.table.models.get(model)
        if mt is None or variant not in mt.variants or mt.variants[variant].weight_bp == 0:
            return
        before = mt.routes.model_dump(mode="json")
        data = mt.routes.model_dump(mode="json")
        cut = 0
        for v in data["variants"]:
            if v["name"] == variant:
                cut, v["weight_bp"] = v["weight_bp"], 0
        for v in data["variants"]:
            if v["name"] == mt.champion:
                v["weight_bp"] += cut
        routes = ModelRoutes.model_validate(data)
        new_mt = self._model_table(
            model,
            routes,
            {n: r.model for n, r in mt.variants.items()}
            | ({mt.shadow.name: mt.shadow.model} if mt.shadow else {}),
        )
        new_mt.variants[variant].stats.reset_guard()
        self.install(self.replace_model(model, new_mt))
        event = {
            "ts": time.time(),
            "model": model,
            "variant": variant,
            "version": mt.variants[variant].version,
            "weight_bp_before": cut,
            "champion": mt.champion,
            "reason": reason,
            "window": window,
        }
        self.guard_events.append(event)
        _append_jsonl(self.guard_path, event)
        log.warning("guard cut %s/%s to 0 bp: %s", model, variant, reason)
        self.record_change("guard", "guard.cut", f"routes:{model}", before, routes.model_dump(mode="json"))

    def _shadow_loop(self) -> None:
        """Score queued shadow requests in batches off the request path.

        The request path only appends to a deque (no wake-up, no lock); this thread wakes every
        ``SHADOW_TICK`` seconds, groups what is queued by shadow variant and scores each group in one
        ``session.run`` on the concatenated rows, which keeps the GIL hand-offs with the event loop few.
        """
        q = self._shadow_q
        while True:
            stopping = self._shadow_stop.wait(SHADOW_TICK)
            items = [q.popleft() for _ in range(len(q))]
            groups: dict[int, list[tuple[Any, ...]]] = {}
            for it in items:
                groups.setdefault(id(it[1]), []).append(it)
            for group in groups.values():
                try:
                    self._shadow_batch(group)
                except Exception as e:  # a shadow must never take the thread down
                    self.shadow_failed += len(group)
                    log.exception("shadow scoring failed: %s", e)
            if stopping and not q:
                return

    def _shadow_batch(self, group: list[tuple[Any, ...]]) -> None:
        mt, v = group[0][0], group[0][1]
        sizes = [next(iter(it[2].values())).shape[0] for it in group]
        names = list(group[0][2])
        t0 = time.perf_counter()
        try:
            feeds = {n: np.concatenate([it[2][n] for it in group]) for n in names}
            outputs = v.model.predict(feeds)
        except (InferenceError, ValueError) as e:
            msg = e.message if isinstance(e, InferenceError) else str(e)
            self.shadow_failed += len(group)
            per = (time.perf_counter() - t0) / len(group)
            for it in group:
                self._outcome(mt, v, per, False, None, 0, it[3], it[4], it[5], msg, shadow=True)
            return
        per = (time.perf_counter() - t0) / len(group)
        start = 0
        for it, n in zip(group, sizes, strict=True):
            part = [o[start : start + n] for o in outputs]
            start += n
            self._outcome(mt, v, per, True, v.model.score(part), n, it[3], it[4], it[5], None, shadow=True)

    # ---------------------------------------------------------------- admin reads

    def all_stats(self) -> list[dict[str, Any]]:
        """Return live statistics of every variant served now.

        Returns:
            One snapshot per variant (shadow included), with its current weight.
        """
        out = []
        for mt in self.table.models.values():
            for v in [*mt.variants.values(), *([mt.shadow] if mt.shadow else [])]:
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


def doc_sha(text: bytes) -> str:
    """Return the sha256 of a routes file's bytes (ties the persisted state to its origin).

    Args:
        text: file bytes.

    Returns:
        Hex digest.
    """
    return hashlib.sha256(text).hexdigest()


def _append_jsonl(path: Path, rec: dict[str, Any]) -> None:
    line = (json.dumps(rec, sort_keys=True, default=str) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                log.warning("skipping a damaged line in %s", path)
    return out


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, sort_keys=True, default=str), encoding="utf-8")
    os.replace(tmp, path)
