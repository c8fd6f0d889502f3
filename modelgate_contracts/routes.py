"""The routes document model: per model, weighted variants, an optional shadow, and guard limits.

The router validates its routes file and admin requests with it; the gates build and check the
documents they send with the same model. The YAML/JSON shape is documented in ``docs/router.md``.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

TOTAL_BP = 10_000
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$"


class Guard(BaseModel):
    """Automatic rollback limits for the variants of one model that are not its champion."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    """Whether the guard watches this model's non-champion variants."""
    window: int = Field(default=200, ge=1, le=100_000)
    """Rolling window: the last this-many outcomes of a variant."""
    min_requests: int = Field(default=20, ge=1, le=100_000)
    """Outcomes needed in the window before the guard may act."""
    max_error_rate: float = Field(default=0.05, ge=0.0, le=1.0)
    """Trip when the share of failed requests in the window exceeds this."""
    max_latency_ms: float = Field(default=250.0, gt=0.0)
    """Latency bound of one request, milliseconds."""
    max_slow_rate: float = Field(default=0.05, ge=0.0, le=1.0)
    """Trip when the share of requests slower than ``max_latency_ms`` exceeds this."""
    max_latency_excess_ms: float | None = Field(default=None, gt=0.0)
    """Trip when the variant's median latency over its window exceeds the champion's median over the same
    period by more than this (milliseconds); ``None``: off. Relative, as a canary analysis compares canary
    and baseline in one window: load that slows both variants does not trip it."""


class Variant(BaseModel):
    """One variant: a name, a model source and a weight in basis points."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME_PATTERN)
    uri: str = Field(min_length=1, max_length=4096)
    weight_bp: int = Field(ge=0, le=TOTAL_BP)


class Shadow(BaseModel):
    """A variant scored off the request path on a sampled share of requests; never returned."""

    model_config = ConfigDict(extra="forbid")

    variant: str = Field(pattern=NAME_PATTERN)
    uri: str = Field(min_length=1, max_length=4096)
    percent: float = Field(ge=0.0, le=100.0)


class ModelRoutes(BaseModel):
    """The routes of one model."""

    model_config = ConfigDict(extra="forbid")

    salt: str = Field(default="", max_length=256)
    """Experiment salt, part of the assignment hash: a new salt reshuffles units."""
    champion: str | None = Field(default=None, pattern=NAME_PATTERN)
    """The variant the guard never cuts and that receives cut weight; defaults to the first variant."""
    variants: list[Variant] = Field(min_length=1, max_length=32)
    shadow: Shadow | None = None
    guard: Guard = Field(default_factory=Guard)
    allow_non_finite: bool = False
    """Accept NaN and infinity in float inputs (refused with 400 by default)."""

    @model_validator(mode="after")
    def _check(self) -> ModelRoutes:
        names = [v.name for v in self.variants]
        if len(set(names)) != len(names):
            raise ValueError(f"variant names must be unique, got {names}")
        total = sum(v.weight_bp for v in self.variants)
        if total != TOTAL_BP:
            raise ValueError(f"variant weights must sum to {TOTAL_BP} basis points, got {total}")
        if self.champion is not None and self.champion not in names:
            raise ValueError(f"champion {self.champion!r} is not one of the variants {names}")
        if self.shadow is not None and self.shadow.variant in names:
            raise ValueError(f"shadow variant {self.shadow.variant!r} must not also be a primary variant")
        return self

    def champion_name(self) -> str:
        """Return the champion variant's name (explicit, or the first variant)."""
        return self.champion if self.champion is not None else self.variants[0].name


def champion_of(doc: dict[str, Any]) -> str | None:
    """Return the champion variant's name of one model's routes as JSON data (explicit, or the first
    variant, as :meth:`ModelRoutes.champion_name`); None when it has no variants."""
    variants = doc.get("variants") or []
    return doc.get("champion") or (variants[0].get("name") if variants else None)


class RoutesDocument(BaseModel):
    """The whole routes document."""

    model_config = ConfigDict(extra="forbid")

    default_model: str | None = Field(default=None, pattern=NAME_PATTERN)
    """Model scored by ``POST /invocations``; defaults to the first model."""
    models: dict[str, ModelRoutes] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check(self) -> RoutesDocument:
        for name in self.models:
            if not re.match(NAME_PATTERN, name):
                raise ValueError(f"model name {name!r} must match {NAME_PATTERN}")
        if self.default_model is not None and self.default_model not in self.models:
            raise ValueError(f"default_model {self.default_model!r} is not one of the models")
        return self

    def dump(self) -> dict[str, Any]:
        """Return the document as plain JSON-compatible data."""
        return self.model_dump(mode="json", exclude_none=True)
