"""Route tables: what is served now (immutable once built), and the loader that builds them.

A table is built off the event loop (models resolved, verified, loaded and warmed up) and swapped in
by one assignment; in-flight requests finish on the table they started with.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from typing import Any

from router.assignment import Assigner
from router.errors import ModelLoadError
from router.model import OnnxModel
from router.routes import ModelRoutes, RoutesDocument, parse_document
from router.settings import RouterSettings
from router.sources import RegistryResolver, ResolvedModel, is_registry_uri, resolve_local
from router.stats import VariantStats

log = logging.getLogger(__name__)


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
        for v in self.runtimes():
            self.by_version.setdefault(v.name, v)
            self.by_version.setdefault(v.version, v)

    def primary(self) -> VariantRuntime:
        """Return the champion's runtime (used for metadata)."""
        return self.variants[self.champion]

    def runtimes(self) -> list[VariantRuntime]:
        """Return every variant, the shadow last."""
        return [*self.variants.values(), *([self.shadow] if self.shadow else [])]


@dataclass
class RouteTable:
    """All models served now, and the document they came from."""

    doc: RoutesDocument
    models: dict[str, ModelTable]
    default_model: str | None
    revision: int = 0
    generation: int = 0
    """The store generation this table serves (a guard cut not yet written keeps the old one)."""


class ModelLoader:
    """Resolves model URIs, loads and warms models (reusing loaded ones), and builds route tables.

    Args:
        settings: validated router settings.
    """

    def __init__(self, settings: RouterSettings) -> None:
        self.settings = settings
        self.resolver = RegistryResolver(
            settings.resolved_cache_dir(),
            settings.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI"),
            settings.require_sha256,
            settings.region,
        )
        self._models: dict[tuple[str, str], OnnxModel] = {}
        self._stats: dict[tuple[str, str, str, bool], VariantStats] = {}
        self._lock = threading.Lock()

    def _resolve(self, uri: str) -> ResolvedModel:
        if is_registry_uri(uri):
            return self.resolver.resolve(uri)
        return resolve_local(uri)

    def load(self, uri: str) -> OnnxModel:
        """Resolve, verify and load one model, or reuse the loaded one with the same file and sha256.

        Args:
            uri: a ``models:/`` URI or a local path.

        Returns:
            The warmed-up model.

        Raises:
            ModelLoadError: it cannot be resolved, verified, loaded or warmed up.
        """
        res = self._resolve(uri)
        key = (str(res.path), res.sha256)
        with self._lock:
            cached = self._models.get(key)
        if cached is not None and cached.version == res.version:
            return cached
        model = OnnxModel(res.path, res.sha256, res.version, uri)
        with self._lock:
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

    def model_table(self, name: str, routes: ModelRoutes, models: dict[str, OnnxModel]) -> ModelTable:
        """Build one model's table from loaded models (statistics carry over for the same model file).

        Args:
            name: the model name.
            routes: its validated routes.
            models: variant name to loaded model (the shadow's too).

        Returns:
            The table.

        Raises:
            ModelLoadError: the variants do not all take the same inputs.
        """
        champion = routes.champion_name()
        variants: dict[str, VariantRuntime] = {}
        for v in routes.variants:
            m = models[v.name]
            guarded = routes.guard.enabled and v.name != champion
            variants[v.name] = VariantRuntime(
                v.name, m, v.weight_bp, self._stats_for(name, v.name, m, False), guarded
            )
        shadow = None
        if routes.shadow is not None:
            m = models[routes.shadow.variant]
            stats = self._stats_for(name, routes.shadow.variant, m, True)
            shadow = VariantRuntime(routes.shadow.variant, m, 0, stats, False)
        _check_signatures(name, variants, shadow)
        return ModelTable(name, routes, variants, shadow)

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
        models = {v.name: self.load(v.uri) for v in routes.variants}
        if routes.shadow is not None:
            models[routes.shadow.variant] = self.load(routes.shadow.uri)
        return self.model_table(name, routes, models)

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
        return RouteTable(doc, models, self._default(doc))

    def replace_model(self, cur: RouteTable, name: str, mt: ModelTable | None) -> RouteTable:
        """Return a new table equal to ``cur`` with one model replaced (or removed).

        Args:
            cur: the table served now.
            name: the model name.
            mt: its new table, or None to remove it.

        Returns:
            The new table, not yet installed.
        """
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
        return RouteTable(doc, models, self._default(doc), generation=cur.generation)

    def table_of(self, doc: RoutesDocument, models: dict[str, ModelTable], generation: int) -> RouteTable:
        """Return a table of already built model tables (not yet installed).

        Args:
            doc: the validated document.
            models: model name to its table, one per model of ``doc``.
            generation: the store generation it serves.

        Returns:
            The table.
        """
        return RouteTable(doc, models, self._default(doc), generation=generation)

    def release(self, table: RouteTable) -> None:
        """Forget loaded models that ``table`` (now served) no longer uses.

        Args:
            table: the table just installed.
        """
        live = {(str(v.model.path), v.model.sha256) for mt in table.models.values() for v in mt.runtimes()}
        with self._lock:
            for key in [k for k in self._models if k not in live]:
                del self._models[key]

    def _default(self, doc: RoutesDocument) -> str | None:
        default = doc.default_model or next(iter(doc.models), None)
        if self.settings.default_model and self.settings.default_model in doc.models:
            default = self.settings.default_model
        return default


def _check_signatures(name: str, variants: dict[str, VariantRuntime], shadow: VariantRuntime | None) -> None:
    ref = next(iter(variants.values())).model
    for v in [*variants.values(), *([shadow] if shadow else [])]:
        if [(i.name, i.dtype) for i in v.model.inputs] != [(i.name, i.dtype) for i in ref.inputs]:
            raise ModelLoadError(
                f"model {name!r}: variant {v.name!r} has inputs "
                f"{[i.metadata() for i in v.model.inputs]}, unlike {[i.metadata() for i in ref.inputs]}; "
                "all variants of a model must take the same inputs"
            )


def dump_routes(mt: ModelTable) -> dict[str, Any]:
    """Return a model's routes as JSON data (what the admin API shows and the change log records).

    Args:
        mt: the model's table.

    Returns:
        The routes, ``None`` fields left out.
    """
    return mt.routes.model_dump(mode="json", exclude_none=True)
