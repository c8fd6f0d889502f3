"""The outcome of one regression check: status, reason, figures (JSON through XCom).

Statuses: ``pass``; ``fail`` (fails the verdict); ``warn`` (beyond a limit, but excused: reported
only); ``skipped`` (could not apply, with the reason; fails nothing by itself); ``error`` (the
check could not run where it should have: fails the verdict).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from include.regression.expectations import SuiteResult

Status = Literal["pass", "fail", "warn", "skipped", "error"]
Figure = float | int | str | bool | None
FAILING: tuple[str, ...] = ("fail", "error")


@dataclass
class CheckResult:
    """Outcome of one check.

    Attributes:
        name: check name (``inputs``, ``contract``, ``outputs``, ``determinism``, ``agreement``,
            ``distribution``, ``quality``, ``latency``).
        status: see the module docstring.
        reason: one sentence explaining the status.
        figures: every measured figure and the limit it was held to.
    """

    name: str
    status: Status
    reason: str
    figures: dict[str, Figure] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CheckResult:
        """Rebuild from :meth:`to_dict` output (as carried through XCom)."""
        return cls(d["name"], d["status"], d["reason"], dict(d.get("figures", {})))


def skipped(name: str, reason: str) -> CheckResult:
    """Return a ``skipped`` result."""
    return CheckResult(name, "skipped", reason)


def from_suite(name: str, suite: SuiteResult) -> CheckResult:
    """Turn a great-expectations suite outcome into a check result.

    Args:
        name: ``inputs`` or ``outputs``.
        suite: the outcome.

    Returns:
        ``pass`` when every expectation held, else ``fail`` listing the failed ones.
    """
    figures: dict[str, Figure] = {
        "suite": suite.suite,
        "expectations": suite.evaluated,
        "failed_expectations": len(suite.failed),
    }
    if suite.success:
        return CheckResult(name, "pass", f"all {suite.evaluated} expectations of {suite.suite} held", figures)
    shown = "; ".join(suite.failed[:5]) + ("; ..." if len(suite.failed) > 5 else "")
    return CheckResult(
        name, "fail", f"{suite.suite}: {len(suite.failed)} expectation(s) failed: {shown}", figures
    )
