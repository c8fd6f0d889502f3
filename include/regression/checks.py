"""The behaviour checks (determinism, agreement, distribution, quality, latency) and the verdict.

Each returns a :class:`~include.regression.results.CheckResult`; the contract check lives in
:mod:`include.regression.contract`. Both are re-exported here.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import numpy as np

from include.regression import stats
from include.regression.contract import check_contract, signature_breaks
from include.regression.results import FAILING, CheckResult, Figure, Status, from_suite, skipped

if TYPE_CHECKING:
    from include.regression.policy import Policy
    from include.regression.scoring import Predictions

__all__ = [
    "FAILING",
    "CheckResult",
    "Figure",
    "Status",
    "check_agreement",
    "check_contract",
    "check_determinism",
    "check_distribution",
    "check_latency",
    "check_quality",
    "excuse_drift",
    "from_suite",
    "signature_breaks",
    "skipped",
    "verdict",
]

log = logging.getLogger(__name__)

DRIFT_CHECKS = ("agreement", "distribution")
"""Checks whose failure a better holdout quality turns into a warning (policy permitting)."""


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
