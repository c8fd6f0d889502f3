"""Canary policy: stages, bake time, approval, judge thresholds and callbacks, from YAML.

Lookup for model ``M``: an explicit file (a DAG conf names it: :func:`policy_by_name`), else the file named by
``MODELGATE_CANARY_POLICY`` (e.g. the demo's stack), else ``policies/canary_M.yaml``, else
``policies/canary_default.yaml`` (``MODELGATE_POLICY_DIR`` overrides the folder). The file holds a
``canary:`` mapping; every key is optional and documented in ``docs/canary.md``.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from include.canary.errors import InvalidPolicy
from include.canary.judge import JudgeConfig

REPO_POLICY_DIR = Path(__file__).resolve().parents[2] / "policies"

MAX_STAGES = 6
"""Most stages a policy may list (the DAG has this many stage slots)."""

_KEYS = {
    "stages",
    "bake_seconds",
    "events_grace_seconds",
    "converge_seconds",
    "require_approval",
    "judge",
    "guard",
    "on_rollback",
    "on_promote",
}


def policy_dir() -> Path:
    """Return the folder of policy files (``MODELGATE_POLICY_DIR`` or the repository's ``policies/``)."""
    from include.config import get_settings

    return get_settings().policy_dir or REPO_POLICY_DIR


@dataclass(frozen=True)
class CanaryPolicy:
    """A canary policy.

    Attributes:
        stages: canary traffic share per stage in percent, increasing, the last one 100.
        bake_seconds: time each stage is observed before it is judged.
        events_grace_seconds: extra wait after the window so the router has flushed its events.
        converge_seconds: how long a routes change may take to reach every router replica before
            the stage fails (rollback) or a promotion stops before the aliases move.
        require_approval: a human approves (Airflow HITL) before any traffic moves.
        judge: judge thresholds and metrics.
        guard: router guard limits written into the model's routes (None keeps the router's).
        on_rollback: ``module:function`` called with the rollback record (e.g. to post to Slack).
        on_promote: ``module:function`` called with the promotion record.
        source: the file the policy came from.
    """

    stages: tuple[float, ...] = (1.0, 5.0, 25.0, 50.0, 100.0)
    bake_seconds: float = 600.0
    events_grace_seconds: float = 10.0
    converge_seconds: float = 30.0
    require_approval: bool = False
    judge: JudgeConfig = field(default_factory=JudgeConfig)
    guard: dict[str, Any] | None = None
    on_rollback: str | None = None
    on_promote: str | None = None
    source: str = "<defaults>"

    def __post_init__(self) -> None:
        problems = []
        st = self.stages
        if not st or len(st) > MAX_STAGES:
            problems.append(f"stages must list 1 to {MAX_STAGES} percentages, got {list(st)}")
        elif any(not 0 < s <= 100 for s in st) or any(b <= a for a, b in itertools.pairwise(st)):
            problems.append(f"stages must be increasing percentages in (0, 100], got {list(st)}")
        elif st[-1] != 100:
            problems.append(f"the last stage must be 100 (full traffic before promotion), got {st[-1]}")
        if not self.bake_seconds > 0:
            problems.append(f"bake_seconds must be positive, got {self.bake_seconds!r}")
        if not self.events_grace_seconds >= 0:
            problems.append(f"events_grace_seconds must be >= 0, got {self.events_grace_seconds!r}")
        if not self.converge_seconds > 0:
            problems.append(f"converge_seconds must be positive, got {self.converge_seconds!r}")
        for name in ("on_rollback", "on_promote"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or ":" not in value):
                problems.append(f"{name} must be 'package.module:function', got {value!r}")
        if problems:
            raise InvalidPolicy(f"canary policy {self.source}: " + "; ".join(problems))

    @property
    def weights_bp(self) -> list[int]:
        """Canary weight per stage in basis points."""
        return [round(s * 100) for s in self.stages]

    @classmethod
    def from_dict(cls, data: Any, source: str = "<dict>") -> CanaryPolicy:
        """Build a policy from a ``canary:`` mapping.

        Args:
            data: the mapping (None: defaults).
            source: where it came from, for messages.

        Returns:
            The policy.

        Raises:
            InvalidPolicy: unknown keys or bad values, named with the file.
        """
        data = dict(data or {})
        unknown = sorted(set(data) - _KEYS)
        if unknown:
            raise InvalidPolicy(f"canary policy {source}: unknown keys {unknown}; known: {sorted(_KEYS)}")
        try:
            judge = JudgeConfig.from_dict(data.pop("judge", None))
        except InvalidPolicy as e:
            raise InvalidPolicy(f"canary policy {source}: {e.message}") from e
        if "stages" in data:
            try:
                data["stages"] = tuple(float(s) for s in data["stages"])
            except (TypeError, ValueError) as e:
                raise InvalidPolicy(f"canary policy {source}: stages must be a list of numbers") from e
        guard = data.get("guard")
        if guard is not None and not isinstance(guard, dict):
            raise InvalidPolicy(f"canary policy {source}: guard must be a mapping of router guard settings")
        try:
            return cls(judge=judge, source=source, **data)
        except TypeError as e:
            raise InvalidPolicy(f"canary policy {source}: {e}") from e

    def to_dict(self) -> dict[str, Any]:
        """Return the policy as JSON data (what :meth:`from_dict` reads back)."""
        return {
            "stages": list(self.stages),
            "bake_seconds": self.bake_seconds,
            "events_grace_seconds": self.events_grace_seconds,
            "converge_seconds": self.converge_seconds,
            "require_approval": self.require_approval,
            "judge": {k: v for k, v in self.judge.to_dict().items() if k != "metrics"}
            | {
                "metrics": {
                    m["name"]: {k: v for k, v in m.items() if k != "name"}
                    for m in self.judge.to_dict()["metrics"]
                }
            },
            "guard": self.guard,
            "on_rollback": self.on_rollback,
            "on_promote": self.on_promote,
        }


_POLICY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,99}")


def policy_by_name(name: str) -> Path:
    """Return the policy file ``<policy dir>/<name>.yaml`` for a name given in a DAG conf.

    A DAG conf names a policy; it never passes a path, so only reviewed files in ``policies/`` (or
    the operator's ``MODELGATE_POLICY_DIR``) can steer a canary.

    Raises:
        InvalidPolicy: the name is not a plain name (letters, digits, ``_``, ``-``) or has no file.
    """
    if not isinstance(name, str) or not _POLICY_NAME.fullmatch(name):
        raise InvalidPolicy(
            f"canary policy {name!r} must be the name of a file in {policy_dir()} without .yaml "
            "(e.g. 'canary_demo'), not a path"
        )
    path = policy_dir() / f"{name}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in policy_dir().glob("canary_*.yaml"))
        raise InvalidPolicy(f"no canary policy named {name!r} in {policy_dir()}; known: {known}")
    return path


def load_policy(model: str, path: str | Path | None = None) -> CanaryPolicy:
    """Load the canary policy of a model.

    Args:
        model: the model name.
        path: an explicit policy file (overrides ``MODELGATE_CANARY_POLICY`` and the lookup).

    Returns:
        The policy.

    Raises:
        InvalidPolicy: the file is missing, not YAML, or invalid.
    """
    from include.config import get_settings

    path = path or (str(get_settings().canary_policy) if get_settings().canary_policy else None)
    if path is not None:
        candidates = [Path(path)]
        if not candidates[0].is_file():
            raise InvalidPolicy(f"canary policy file {path} does not exist")
    else:
        d = policy_dir()
        candidates = [p for p in (d / f"canary_{model}.yaml", d / "canary_default.yaml") if p.is_file()]
        if not candidates:
            return CanaryPolicy()
    p = candidates[0]
    try:
        doc = yaml.safe_load(p.read_text()) or {}
    except (OSError, yaml.YAMLError) as e:
        raise InvalidPolicy(f"canary policy {p} cannot be read: {e}") from e
    if not isinstance(doc, dict) or not isinstance(doc.get("canary", {}), dict):
        raise InvalidPolicy(f"canary policy {p} must be a mapping with a 'canary:' section")
    return CanaryPolicy.from_dict(doc.get("canary"), source=str(p))
