"""The registry manifest: version tags under the ``modelgate.`` prefix, and semver rules."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from include.registry.errors import InvalidConf, InvalidModelName
from modelgate_contracts import tags

# Tag names are the shared contract (modelgate_contracts.tags); the short names stay for this package.
PREFIX = tags.PREFIX
TAG_SHA256 = tags.SHA256
TAG_SOURCE_SHA256 = tags.SOURCE_SHA256
TAG_SEMVER = tags.SEMVER
TAG_SIGNATURE = tags.SIGNATURE
TAG_APPROVAL_STATE = tags.APPROVAL_STATE
TAG_APPROVAL_BY = tags.APPROVAL_BY
TAG_RESIDENCY = tags.RESIDENCY
TAG_STATUS = tags.STATUS
TAG_REGISTERED_BY = tags.REGISTERED_BY
TAG_RUN_ID = tags.RUN_ID
TAG_FEATURE_SPEC = tags.FEATURE_SPEC
LINEAGE_PREFIX = tags.LINEAGE_PREFIX
LINEAGE_KEYS = ("git_sha", "data_uri", "data_sha256", "params", "metrics", "source_run")

STATUS_READY = "ready"
ALIAS_CHALLENGER = "challenger"
ALIAS_CHAMPION = "champion"

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_SEMVER_RE = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)$")
_RESIDENCY_RE = re.compile(r"^[a-z0-9-]{2,32}$")


def validate_model_name(name: Any) -> str:
    """Return ``name`` if it is a valid model name, else raise :class:`InvalidModelName`."""
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise InvalidModelName(
            f"invalid model name {name!r}: use 1-128 letters, digits, '_', '.', '-', starting with a "
            "letter or digit"
        )
    return name


def parse_semver(text: str) -> tuple[int, int, int]:
    """Parse ``MAJOR.MINOR.PATCH``; raise :class:`InvalidConf` otherwise."""
    m = _SEMVER_RE.match(text or "")
    if not m:
        raise InvalidConf(f"invalid semver {text!r}: expected MAJOR.MINOR.PATCH, e.g. 1.4.0")
    return int(m[1]), int(m[2]), int(m[3])


def next_semver(previous: str | None, previous_signature: str | None, signature: str) -> str:
    """Return the next version: 1.0.0 first, a major bump when the signature changed, else minor."""
    if previous is None:
        return "1.0.0"
    major, minor, _ = parse_semver(previous)
    if previous_signature is not None and previous_signature != signature:
        return f"{major + 1}.0.0"
    return f"{major}.{minor + 1}.0"


@dataclass
class Lineage:
    """Where a model came from. Every field is optional."""

    git_sha: str | None = None
    data_uri: str | None = None
    data_sha256: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    source_run: str | None = None

    @classmethod
    def from_dict(cls, data: Any) -> Lineage:
        """Build from a conf dict, refusing unknown keys and wrong types."""
        if data is None:
            return cls()
        if not isinstance(data, dict):
            raise InvalidConf(f"lineage must be an object, got {type(data).__name__}")
        unknown = set(data) - set(LINEAGE_KEYS)
        if unknown:
            raise InvalidConf(f"unknown lineage field(s) {sorted(unknown)}; allowed: {list(LINEAGE_KEYS)}")
        for key in ("params", "metrics"):
            if key in data and not isinstance(data[key], dict):
                raise InvalidConf(f"lineage.{key} must be an object")
        for key in ("git_sha", "data_uri", "data_sha256", "source_run"):
            if data.get(key) is not None and not isinstance(data[key], str):
                raise InvalidConf(f"lineage.{key} must be a string")
        return cls(**data)

    def to_tags(self) -> dict[str, str]:
        """Return the lineage as ``modelgate.lineage.*`` tags (absent fields omitted)."""
        tags: dict[str, str] = {}
        for key in LINEAGE_KEYS:
            value = getattr(self, key)
            if value in (None, {}):
                continue
            tags[LINEAGE_PREFIX + key] = (
                json.dumps(value, sort_keys=True) if isinstance(value, dict) else value
            )
        return tags


def validate_residency(value: Any) -> str | None:
    """Return a data-residency region like ``eu-west-1`` or ``None``; raise :class:`InvalidConf` if bad."""
    if value is None:
        return None
    if not isinstance(value, str) or not _RESIDENCY_RE.match(value):
        raise InvalidConf(f"invalid residency {value!r}: expected a region such as 'eu-west-1'")
    return value
