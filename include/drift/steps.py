"""The steps of the ``drift_monitoring`` DAG, typed: each takes and returns frozen records.

list models → check (one per model) → publish. The records (:mod:`include.xcom`) are what the DAG's
tasks hand each other through XCom: one :class:`Checked` summary per model (verdict, drifted features, the MLflow run of the report).
The live samples, the statistics and the report stay in that MLflow run; :mod:`include.drift.monitor`
does the work. Each check resolves the run's conf into the :class:`Window` it checks (events root, end,
length, level) before it reads anything.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from include.drift import monitor
from include.drift.detect import DEFAULT_ALPHA
from include.drift.errors import DriftError
from include.xcom import XcomRecord

__all__ = ["Checked", "Window", "check", "list_models", "verdicts", "window"]


@dataclass(frozen=True)
class Window(XcomRecord):
    """What a run checks: where the events are, the window's end (ISO; None: now) and length, the level."""

    events_root: str
    end: str | None
    window_hours: float
    alpha: float

    def end_time(self) -> datetime | None:
        """Return the end of the window (None: now)."""
        return datetime.fromisoformat(self.end) if self.end else None


@dataclass(frozen=True)
class Checked(XcomRecord):
    """One model's drift check: its champion version, the verdict, drifted features, the MLflow run.

    ``verdict`` is ``drift``, ``no_drift``, ``no_data`` or ``no_champion`` (then nothing was checked).
    """

    model: str
    version: str | None
    verdict: str
    drifted: list[str]
    no_data: list[str] = field(default_factory=list)
    run_id: str | None = None


def window(conf: dict[str, Any]) -> Window:
    """Resolve a run's conf (``events_root``, ``end``, ``window_hours``, ``alpha``) once, with defaults.

    Raises:
        DriftError: ``end`` is not an ISO time or a number is not positive.
    """
    from include.config import get_settings

    end = conf.get("end") or None
    if end is not None:
        try:
            datetime.fromisoformat(str(end))
        except ValueError as e:
            raise DriftError(f"conf end {end!r} is not an ISO time: {e}") from e
    try:
        hours, alpha = float(conf.get("window_hours") or 24), float(conf.get("alpha") or DEFAULT_ALPHA)
    except (TypeError, ValueError) as e:
        raise DriftError(f"conf window_hours and alpha must be numbers: {e}") from e
    if hours <= 0 or not 0 < alpha < 1:
        raise DriftError(f"conf window_hours must be > 0 and alpha in (0, 1), got {hours} and {alpha}")
    root = str(conf.get("events_root") or get_settings().resolved_events_root())
    return Window(root, str(end) if end else None, hours, alpha)


def list_models(conf: dict[str, Any], tracking_uri: str | None) -> list[str]:
    """Return the conf's ``models``, else every registered model with a ``champion`` alias."""
    if conf.get("models"):
        return [str(m) for m in conf["models"]]
    return monitor.champion_models(tracking_uri)


def check(model: str, w: Window, tracking_uri: str | None, actor: str, run_id: str) -> Checked:
    """Check ``model``'s champion for drift over the window; log the report, tag the version, alert."""
    out = monitor.check(model, w.events_root, end=w.end_time(), window_hours=w.window_hours, alpha=w.alpha,
                        tracking_uri=tracking_uri, actor=actor, run_id=run_id)  # fmt: skip
    return Checked.from_xcom(out)


def verdicts(results: list[Any]) -> list[Checked]:
    """Return the checks of the mapped ``check`` XComs (the Asset event's extra lists them)."""
    return [Checked.from_xcom(r) for r in results]
