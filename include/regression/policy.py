"""Per-model regression policy: thresholds in YAML, defaults in ``policies/default.yaml``.

``load_policy(model_name)`` reads ``default.yaml`` and, when it exists, ``<model_name>.yaml`` from
the policy folder (``MODELGATE_POLICY_DIR``, default ``policies/`` at the repository root), merges
the model file over the defaults key by key, and validates the result: unknown keys, wrong types
and out-of-range values raise :class:`PolicyError` naming the file and the key.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from include.regression.errors import PolicyError

log = logging.getLogger(__name__)

POLICY_DIR_ENV = "MODELGATE_POLICY_DIR"
DEFAULT_POLICY_DIR = Path(__file__).resolve().parents[2] / "policies"
DEFAULT_FILE = "default.yaml"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class SyntheticPolicy(_Section):
    """How many synthetic rows to draw from the feature spec, and whether to add edge cases."""

    rows: int = Field(default=2000, ge=10, le=1_000_000)
    seed: int = Field(default=0, ge=0)
    edge_cases: bool = True


class InputsPolicy(_Section):
    """The input suite template and how far values may leave the spec's range."""

    suite: str = "regression_inputs.suite.json"
    range_tolerance: float = Field(default=0.0, ge=0.0, le=1.0)


class OutputsPolicy(_Section):
    """Output names, known classes and the output suite template."""

    suite: str = "regression_outputs.suite.json"
    label_output: str = "label"
    probabilities_output: str = "probabilities"
    classes: list[int] | None = None
    sum_tolerance: float = Field(default=1e-4, gt=0.0, le=0.1)


class ContractPolicy(_Section):
    """Signature compatibility rule."""

    breaking_change_needs_major_bump: bool = True


class AgreementPolicy(_Section):
    """Smallest share of rows where both models predict the same class."""

    min_rate: float = Field(default=0.95, ge=0.0, le=1.0)


class DistributionPolicy(_Section):
    """Limits on the shift of the positive-class score distribution."""

    max_ks: float = Field(default=0.10, ge=0.0, le=1.0)
    max_psi: float = Field(default=0.10, ge=0.0)
    bins: int = Field(default=10, ge=2, le=100)
    drift_excused_by_better_quality: bool = True


class QualityPolicy(_Section):
    """The labelled holdout and how much worse than the champion the challenger may be on it."""

    holdout_uri: str | None = None
    label_column: str = "label"
    max_auc_drop: float = Field(default=0.005, ge=0.0, le=1.0)
    max_accuracy_drop: float = Field(default=0.01, ge=0.0, le=1.0)


class DeterminismPolicy(_Section):
    """Largest allowed difference between two runs on the same input."""

    max_abs_diff: float = Field(default=0.0, ge=0.0)


class LatencyPolicy(_Section):
    """Single-row latency budget relative to the champion."""

    runs: int = Field(default=500, ge=20, le=100_000)
    warmup: int = Field(default=50, ge=0, le=10_000)
    max_p99_ratio: float = Field(default=2.0, gt=0.0)
    min_budget_ms: float = Field(default=10.0, ge=0.0)


class Policy(_Section):
    """The whole regression policy of one model (see ``policies/default.yaml`` for the meaning)."""

    synthetic: SyntheticPolicy = SyntheticPolicy()
    inputs: InputsPolicy = InputsPolicy()
    outputs: OutputsPolicy = OutputsPolicy()
    contract: ContractPolicy = ContractPolicy()
    agreement: AgreementPolicy = AgreementPolicy()
    distribution: DistributionPolicy = DistributionPolicy()
    quality: QualityPolicy = QualityPolicy()
    determinism: DeterminismPolicy = DeterminismPolicy()
    latency: LatencyPolicy = LatencyPolicy()
    sources: list[str] = Field(default_factory=list, description="files merged, in order")

    @model_validator(mode="after")
    def _classes_unique(self) -> Policy:
        classes = self.outputs.classes
        if classes is not None and (not classes or len(set(classes)) != len(classes)):
            raise ValueError("outputs.classes must be a non-empty list of distinct integers")
        return self

    def to_dict(self) -> dict[str, Any]:
        """Return the policy as plain JSON-serialisable data (round-trips through :meth:`from_dict`)."""
        return self.model_dump(mode="json")

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "policy") -> Policy:
        """Validate a policy document.

        Args:
            data: the merged document.
            where: what to name in error messages (file names).

        Returns:
            The policy.

        Raises:
            PolicyError: unknown keys, wrong types or out-of-range values.
        """
        try:
            return cls.model_validate(data)
        except ValidationError as e:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or '(top level)'}: {err['msg']}" for err in e.errors()
            )
            raise PolicyError(f"{where}: invalid regression policy: {problems}") from e

    def sha256(self) -> str:
        """Return a hash of the effective thresholds (sources excluded), for the evidence trail."""
        doc = {k: v for k, v in self.to_dict().items() if k != "sources"}
        return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


def policy_dir() -> Path:
    """Return the folder holding ``default.yaml`` and the per-model files."""
    from include.config import get_settings

    configured = get_settings().policy_dir
    return configured.expanduser() if configured else DEFAULT_POLICY_DIR


def read_policy_file(path: Path) -> dict[str, Any]:
    """Read one policy YAML file into a mapping (an empty file is an empty mapping).

    Args:
        path: the YAML file.

    Returns:
        The document.

    Raises:
        PolicyError: the file is unreadable, not YAML, or not a mapping at the top level.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise PolicyError(f"{path}: cannot read the regression policy ({e.strerror or e})") from e
    try:
        doc = yaml.safe_load(text)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise PolicyError(f"{path}: not valid YAML{at}: {e.problem}") from e
    except yaml.YAMLError as e:
        raise PolicyError(f"{path}: not valid YAML: {e}") from e
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise PolicyError(
            f"{path}: a regression policy must be a mapping of sections, got {type(doc).__name__}"
        )
    return doc


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def load_policy(model_name: str, directory: Path | None = None) -> Policy:
    """Return the effective policy of ``model_name``: defaults merged with its own file.

    Args:
        model_name: registered model name; ``<model_name>.yaml`` is read when present.
        directory: the policy folder (default :func:`policy_dir`).

    Returns:
        The validated policy; ``sources`` lists the files merged.

    Raises:
        PolicyError: ``default.yaml`` is missing, or a file is not YAML or breaks the schema.
    """
    folder = directory or policy_dir()
    default_path = folder / DEFAULT_FILE
    if not default_path.is_file():
        raise PolicyError(f"{default_path}: the default regression policy is missing")
    doc = read_policy_file(default_path)
    policy = Policy.from_dict({**doc, "sources": [DEFAULT_FILE]}, where=str(default_path))
    # one file per model; registry names hold letters, digits, '_', '.', '-' only: no path tricks
    model_path = folder / f"{model_name}.yaml"
    if "/" not in model_name and "\\" not in model_name and model_path.is_file():
        override = read_policy_file(model_path)
        if "sources" in override:
            raise PolicyError(f"{model_path}: 'sources' is set by the loader, not by policy files")
        merged = {**_merge(doc, override), "sources": [DEFAULT_FILE, model_path.name]}
        policy = Policy.from_dict(merged, where=str(model_path))
    log.info("regression policy of %s from %s", model_name, ", ".join(policy.sources))
    return policy
