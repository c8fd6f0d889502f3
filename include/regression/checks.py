"""The regression checks, each returning a :class:`CheckResult` with its figures, and the verdict.

Statuses: ``pass``; ``fail`` (fails the verdict); ``warn`` (beyond a limit, but excused: reported
only); ``skipped`` (could not apply, with the reason; fails nothing by itself); ``error`` (the
check could not run where it should have: fails the verdict).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from include.regression import stats

if TYPE_CHECKING:
    from include.regression.expectations import SuiteResult
    from include.regression.policy import Policy
    from include.regression.scoring import Predictions

log = logging.getLogger(__name__)

Status = Literal["pass", "fail", "warn", "skipped", "error"]
Figure = float | int | str | bool | None
FAILING: tuple[str, ...] = ("fail", "error")
DRIFT_CHECKS = ("agreement", "distribution")
"""Checks whose failure a better holdout quality turns into a warning (policy permitting)."""


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


def _dims_ok(old: tuple[int | None, ...], new: tuple[int | None, ...], widen_ok: bool) -> bool:
    if len(old) != len(new):
        return False
    for a, b in zip(old, new, strict=True):
        if a == b:
            continue
        if widen_ok and b is None:  # the new model accepts any size where the old one wanted a fixed one
            continue
        if not widen_ok and a is None:  # callers never relied on a fixed size here
            continue
        return False
    return True


def signature_breaks(champion_sig: str, challenger_sig: str) -> list[str]:
    """List what makes the challenger's signature incompatible with the champion's.

    Compatible: every champion input exists with the same dtype and a shape that accepts the same
    data (a fixed axis may become dynamic), no new inputs, every champion output exists with the same
    dtype and a shape at least as specific. New outputs are fine.

    Args:
        champion_sig: ``modelgate.signature`` JSON of the champion.
        challenger_sig: the challenger's.

    Returns:
        One sentence per breaking difference (empty when compatible).
    """
    from include.registry.signature import Signature

    old, new = Signature.from_json(champion_sig), Signature.from_json(challenger_sig)
    breaks: list[str] = []
    new_in = {t.name: t for t in new.inputs}
    for t in old.inputs:
        n = new_in.get(t.name)
        if n is None:
            breaks.append(f"input {t.name!r} was removed")
        elif n.dtype != t.dtype:
            breaks.append(f"input {t.name!r} changed type {t.dtype} -> {n.dtype}")
        elif not _dims_ok(t.shape, n.shape, widen_ok=True):
            breaks.append(f"input {t.name!r} changed shape {list(t.shape)} -> {list(n.shape)}")
    for name in sorted(set(new_in) - {t.name for t in old.inputs}):
        breaks.append(f"new required input {name!r}")
    new_out = {t.name: t for t in new.outputs}
    for t in old.outputs:
        n = new_out.get(t.name)
        if n is None:
            breaks.append(f"output {t.name!r} was removed")
        elif n.dtype != t.dtype:
            breaks.append(f"output {t.name!r} changed type {t.dtype} -> {n.dtype}")
        elif not _dims_ok(t.shape, n.shape, widen_ok=False):
            breaks.append(f"output {t.name!r} changed shape {list(t.shape)} -> {list(n.shape)}")
    return breaks


def check_contract(
    champion_sig: str, challenger_sig: str, champion_semver: str, challenger_semver: str, policy: Policy
) -> CheckResult:
    """Signature compatibility with the champion; a breaking change needs a major semver bump.

    Args:
        champion_sig: champion ``modelgate.signature``.
        challenger_sig: challenger ``modelgate.signature``.
        champion_semver: champion ``modelgate.semver``.
        challenger_semver: challenger ``modelgate.semver``.
        policy: the model's policy.

    Returns:
        ``pass`` when compatible, or breaking with a major bump (``breaking`` figure true: later
        comparisons with the champion are skipped); ``fail`` for a breaking change without one.
    """
    from include.registry.errors import InvalidConf
    from include.registry.manifest import parse_semver

    breaks = signature_breaks(champion_sig, challenger_sig)
    figures: dict[str, Figure] = {
        "compatible": not breaks,
        "breaking": bool(breaks),
        "champion_semver": champion_semver,
        "challenger_semver": challenger_semver,
        "breaking_changes": "; ".join(breaks),
    }
    if not breaks:
        return CheckResult("contract", "pass", "signature compatible with the champion's", figures)
    try:
        major_bump = parse_semver(challenger_semver)[0] > parse_semver(champion_semver)[0]
    except InvalidConf as e:
        figures["major_bump"] = False
        return CheckResult(
            "contract", "fail", f"breaking signature change ({'; '.join(breaks)}) and {e.message}", figures
        )
    figures["major_bump"] = major_bump
    if major_bump or not policy.contract.breaking_change_needs_major_bump:
        how = "declared by a major bump" if major_bump else "allowed by policy"
        return CheckResult(
            "contract",
            "pass",
            f"breaking signature change {how} ({champion_semver} -> {challenger_semver}): "
            f"{'; '.join(breaks)}; comparisons with the champion are skipped",
            figures,
        )
    return CheckResult(
        "contract",
        "fail",
        f"breaking signature change without a major semver bump ({champion_semver} -> {challenger_semver}): "
        f"{'; '.join(breaks)}",
        figures,
    )


def check_determinism(first: Predictions, second: Predictions, policy: Policy) -> CheckResult:
    """Same input twice must give the same output (NaN positions included).

    Args:
        first: challenger outputs on the inputs.
        second: challenger outputs on the same inputs again.
        policy: the model's policy.

    Returns:
        ``pass`` when labels are equal and probabilities differ by at most ``max_abs_diff``.
    """
    limit = policy.determinism.max_abs_diff
    p1, p2 = first.probabilities, second.probabilities
    same_nan = bool(np.array_equal(np.isnan(p1), np.isnan(p2)))
    finite = np.isfinite(p1) & np.isfinite(p2)
    diff = float(np.max(np.abs(p1[finite] - p2[finite]))) if finite.any() else 0.0
    labels_differ = int(np.sum(first.labels != second.labels))
    figures: dict[str, Figure] = {"max_abs_diff": diff, "labels_differ": labels_differ, "limit": limit}
    if same_nan and diff <= limit and labels_differ == 0:
        return CheckResult(
            "determinism", "pass", f"two runs on {p1.shape[0]} rows: max |diff| {diff:.3g}", figures
        )
    return CheckResult(
        "determinism",
        "fail",
        f"two runs on the same input differ: max |diff| {diff:.3g} (limit {limit}), {labels_differ} labels "
        f"changed{'' if same_nan else ', NaN in different places'}",
        figures,
    )


def check_agreement(champion: Predictions, challenger: Predictions, policy: Policy) -> CheckResult:
    """Share of rows where both models predict the same class.

    Args:
        champion: champion outputs.
        challenger: challenger outputs on the same rows.
        policy: the model's policy.

    Returns:
        ``pass`` when the rate is at least ``agreement.min_rate``.
    """
    rate = stats.agreement_rate(champion.labels, challenger.labels)
    limit = policy.agreement.min_rate
    figures: dict[str, Figure] = {"rate": rate, "min_rate": limit, "rows": int(champion.labels.size)}
    ok = rate >= limit
    return CheckResult(
        "agreement", "pass" if ok else "fail", f"agreement {rate:.4f} {'>=' if ok else '<'} {limit}", figures
    )


def check_distribution(champion: Predictions, challenger: Predictions, policy: Policy) -> CheckResult:
    """Shift of the positive-class score: two-sample KS and PSI (champion = reference).

    Args:
        champion: champion outputs.
        challenger: challenger outputs on the same rows.
        policy: the model's policy.

    Returns:
        ``pass`` when KS <= ``max_ks`` and PSI <= ``max_psi``; ``error`` when a model has no finite score.
    """
    dp = policy.distribution
    a, b = champion.positive_scores, challenger.positive_scores
    nonfinite = int(np.sum(~np.isfinite(b)))
    try:
        ks = stats.ks_two_sample(a, b)
        p = stats.psi(a, b, bins=dp.bins)
    except ValueError as e:
        return CheckResult(
            "distribution", "error", f"scores cannot be compared: {e}", {"nonfinite": nonfinite}
        )
    figures: dict[str, Figure] = {
        "ks": ks.statistic,
        "ks_pvalue": ks.pvalue,
        "ks_location": ks.location,
        "psi": p.psi,
        "max_ks": dp.max_ks,
        "max_psi": dp.max_psi,
        "nonfinite": nonfinite,
    }
    over = [f"KS {ks.statistic:.4f} > {dp.max_ks}"] if ks.statistic > dp.max_ks else []
    over += [f"PSI {p.psi:.4f} > {dp.max_psi}"] if p.psi > dp.max_psi else []
    if over:
        return CheckResult("distribution", "fail", "score distribution shifted: " + ", ".join(over), figures)
    return CheckResult(
        "distribution", "pass", f"KS {ks.statistic:.4f}, PSI {p.psi:.4f} within limits", figures
    )


def check_quality(
    champion: Predictions, challenger: Predictions, y: np.ndarray, policy: Policy
) -> CheckResult:
    """Quality on the labelled holdout: the challenger may not be worse by more than the tolerances.

    Accuracy for every classifier; AUC of the positive-class score for binary labels.

    Args:
        champion: champion outputs on the holdout.
        challenger: challenger outputs on the holdout.
        y: true classes.
        policy: the model's policy.

    Returns:
        ``pass``/``fail``; ``fail`` too when the challenger gives non-finite scores on holdout rows.
    """
    qp = policy.quality
    bad = int(np.sum(~np.all(np.isfinite(challenger.probabilities), axis=1)))
    figures: dict[str, Figure] = {
        "rows": int(y.size),
        "champion_accuracy": stats.accuracy(y, champion.labels),
        "challenger_accuracy": stats.accuracy(y, challenger.labels),
        "max_accuracy_drop": qp.max_accuracy_drop,
        "challenger_nonfinite_rows": bad,
    }
    acc_delta = float(figures["challenger_accuracy"]) - float(figures["champion_accuracy"])  # type: ignore[arg-type]
    figures["accuracy_delta"] = acc_delta
    problems: list[str] = []
    if bad:
        problems.append(f"{bad} holdout rows get non-finite probabilities")
    if acc_delta < -qp.max_accuracy_drop:
        problems.append(f"accuracy drops by {-acc_delta:.4f} (> {qp.max_accuracy_drop})")
    binary = bool(np.all(np.isin(y, (0, 1)))) and champion.probabilities.shape[1] == 2
    if binary and not bad and np.all(np.isfinite(champion.positive_scores)):
        try:
            auc_c = stats.roc_auc(y, champion.positive_scores)
            auc_n = stats.roc_auc(y, challenger.positive_scores)
        except ValueError as e:
            return CheckResult("quality", "error", f"AUC cannot be computed on the holdout: {e}", figures)
        figures.update(
            {
                "champion_auc": auc_c,
                "challenger_auc": auc_n,
                "auc_delta": auc_n - auc_c,
                "max_auc_drop": qp.max_auc_drop,
            }
        )
        if auc_n - auc_c < -qp.max_auc_drop:
            problems.append(f"AUC drops by {auc_c - auc_n:.4f} (> {qp.max_auc_drop})")
    auc_delta = figures.get("auc_delta", 0.0)
    better = not problems and acc_delta >= 0 and isinstance(auc_delta, float | int) and auc_delta >= 0
    figures["not_worse"] = better
    if problems:
        return CheckResult(
            "quality", "fail", "challenger worse on the holdout: " + "; ".join(problems), figures
        )
    summary = f"accuracy {figures['champion_accuracy']:.4f} -> {figures['challenger_accuracy']:.4f}"
    if "challenger_auc" in figures:
        summary += f", AUC {figures['champion_auc']:.4f} -> {figures['challenger_auc']:.4f}"
    return CheckResult("quality", "pass", summary, figures)


def check_latency(latency: dict[str, float], policy: Policy) -> CheckResult:
    """Single-row p99 within ``max(max_p99_ratio * champion p99, min_budget_ms)``.

    Args:
        latency: figures from :func:`include.regression.scoring.paired_latency`.
        policy: the model's policy.

    Returns:
        ``pass`` when the challenger's p99 is within budget.
    """
    lp = policy.latency
    budget = max(lp.max_p99_ratio * latency["champion_p99_ms"], lp.min_budget_ms)
    figures: dict[str, Figure] = {
        **latency,
        "budget_ms": budget,
        "max_p99_ratio": lp.max_p99_ratio,
        "runs": lp.runs,
    }
    p99 = latency["challenger_p99_ms"]
    ok = p99 <= budget
    return CheckResult(
        "latency",
        "pass" if ok else "fail",
        f"challenger p99 {p99:.3f} ms {'<=' if ok else '>'} budget {budget:.3f} ms "
        f"(champion p99 {latency['champion_p99_ms']:.3f} ms)",
        figures,
    )


def excuse_drift(results: list[CheckResult], policy: Policy) -> list[CheckResult]:
    """Turn agreement/distribution failures into warnings when the holdout shows the challenger not worse.

    Applies only with ``distribution.drift_excused_by_better_quality`` and a ``quality`` check
    that passed with ``not_worse`` true: a model that changes behaviour must prove with labels that
    it is at least as good.

    Args:
        results: every check's result.
        policy: the model's policy.

    Returns:
        The results, with excused failures downgraded to ``warn``.
    """
    quality = next((r for r in results if r.name == "quality"), None)
    if not policy.distribution.drift_excused_by_better_quality or quality is None:
        return results
    if quality.status != "pass" or not quality.figures.get("not_worse"):
        return results
    out = []
    for r in results:
        if r.name in DRIFT_CHECKS and r.status == "fail":
            r = CheckResult(
                r.name, "warn", r.reason + " (excused: not worse on the labelled holdout)", r.figures
            )
        out.append(r)
    return out


def verdict(results: list[CheckResult]) -> tuple[str, list[str]]:
    """Return ``("pass", [])`` or ``("fail", reasons)`` from the checks.

    Args:
        results: every check's result.

    Returns:
        The verdict and one reason per failing check (``"<check>: <reason>"``).
    """
    reasons = [f"{r.name}: {r.reason}" for r in results if r.status in FAILING]
    return ("fail" if reasons else "pass"), reasons
