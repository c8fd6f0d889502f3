"""Statistics comparing a challenger's outputs with the champion's: KS, PSI, agreement, AUC, p99.

All functions take NumPy arrays and return plain floats; non-finite scores are the caller's to
handle (the output suite reports them), these functions drop them where noted.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from scipy import stats

log = logging.getLogger(__name__)

PSI_EPSILON = 1e-4
"""Floor of a bin's share in the PSI sum, so an empty bin gives a large but finite term."""


@dataclass(frozen=True)
class KSResult:
    """Two-sample Kolmogorov-Smirnov test.

    Attributes:
        statistic: largest distance between the two empirical CDFs.
        pvalue: two-sided p-value (scipy's exact or asymptotic method).
        location: score at which the distance is largest.
    """

    statistic: float
    pvalue: float
    location: float


@dataclass(frozen=True)
class PSIResult:
    """Population stability index and its bins.

    Attributes:
        psi: ``sum((a - e) * ln(a / e))`` over the bins.
        edges: bin edges (first ``-inf``, last ``+inf``).
        expected: share of the reference (champion) scores per bin.
        actual: share of the compared (challenger) scores per bin.
    """

    psi: float
    edges: tuple[float, ...]
    expected: tuple[float, ...]
    actual: tuple[float, ...]


def _finite(x: np.ndarray) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64).ravel()
    return a[np.isfinite(a)]


def ks_two_sample(reference: np.ndarray, compared: np.ndarray) -> KSResult:
    """Run scipy's two-sample KS test on the finite values of both samples.

    Args:
        reference: champion scores.
        compared: challenger scores.

    Returns:
        The statistic, p-value and where the CDFs differ most.

    Raises:
        ValueError: a sample has no finite value.
    """
    a, b = _finite(reference), _finite(compared)
    if a.size == 0 or b.size == 0:
        raise ValueError("KS test needs at least one finite score in each sample")
    res = stats.ks_2samp(a, b)
    return KSResult(float(res.statistic), float(res.pvalue), float(res.statistic_location))


def psi(
    reference: np.ndarray, compared: np.ndarray, bins: int = 10, epsilon: float = PSI_EPSILON
) -> PSIResult:
    """Population stability index of ``compared`` against ``reference``.

    Bin edges are the reference's quantiles at ``0, 1/bins, ..., 1`` (duplicates from ties merged),
    with the outer edges opened to ``-inf``/``+inf`` so every value falls in a bin. Bins are
    right-closed except the first (``numpy.histogram`` semantics on the inner edges). Shares below
    ``epsilon`` are raised to it before the logarithm.

    Args:
        reference: champion scores (non-finite values dropped).
        compared: challenger scores (non-finite values dropped).
        bins: number of quantile bins before merging ties.
        epsilon: floor of a share.

    Returns:
        The index with its bins.

    Raises:
        ValueError: fewer than 2 bins, or a sample without finite values.
    """
    if bins < 2:
        raise ValueError(f"PSI needs at least 2 bins, got {bins}")
    a, b = _finite(reference), _finite(compared)
    if a.size == 0 or b.size == 0:
        raise ValueError("PSI needs at least one finite score in each sample")
    inner = np.unique(np.quantile(a, np.linspace(0.0, 1.0, bins + 1))[1:-1])
    edges = np.concatenate([[-np.inf], inner, [np.inf]])
    # searchsorted 'left' on inner edges: value v goes to bin i where inner[i-1] < v <= inner[i]
    exp_counts = np.bincount(np.searchsorted(inner, a, side="left"), minlength=inner.size + 1)
    act_counts = np.bincount(np.searchsorted(inner, b, side="left"), minlength=inner.size + 1)
    e = exp_counts / a.size
    r = act_counts / b.size
    e_f, r_f = np.maximum(e, epsilon), np.maximum(r, epsilon)
    value = float(np.sum((r_f - e_f) * np.log(r_f / e_f)))
    return PSIResult(
        value, tuple(float(x) for x in edges), tuple(float(x) for x in e), tuple(float(x) for x in r)
    )


def agreement_rate(labels_a: np.ndarray, labels_b: np.ndarray) -> float:
    """Share of rows where two label arrays agree.

    Args:
        labels_a: predicted classes of one model.
        labels_b: predicted classes of the other, same length.

    Returns:
        A value in [0, 1].

    Raises:
        ValueError: different lengths or empty arrays.
    """
    a, b = np.asarray(labels_a).ravel(), np.asarray(labels_b).ravel()
    if a.size != b.size or a.size == 0:
        raise ValueError(f"agreement needs two non-empty arrays of equal length, got {a.size} and {b.size}")
    return float(np.mean(a == b))


def roc_auc(y_true: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve of a binary score (Mann-Whitney U / (n_pos * n_neg), ties count half).

    Args:
        y_true: 0/1 labels.
        score: score of class 1 (must be finite).

    Returns:
        AUC in [0, 1].

    Raises:
        ValueError: labels not binary, only one class present, lengths differ or non-finite scores.
    """
    y = np.asarray(y_true).ravel()
    s = np.asarray(score, dtype=np.float64).ravel()
    if y.size != s.size:
        raise ValueError(f"AUC needs as many labels as scores, got {y.size} and {s.size}")
    if not np.all(np.isfinite(s)):
        raise ValueError("AUC needs finite scores")
    if not np.all(np.isin(y, (0, 1))):
        raise ValueError("AUC needs binary 0/1 labels")
    n_pos = int(np.sum(y == 1))
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        raise ValueError("AUC needs both classes in the labels")
    ranks = stats.rankdata(s)
    u = float(np.sum(ranks[y == 1])) - n_pos * (n_pos + 1) / 2.0
    return u / (n_pos * n_neg)


def accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Share of correct predictions.

    Args:
        y_true: true classes.
        y_pred: predicted classes, same length.

    Returns:
        A value in [0, 1].

    Raises:
        ValueError: different lengths or empty arrays.
    """
    return agreement_rate(y_true, y_pred)


def percentile_ms(seconds: np.ndarray | list[float], q: float = 99.0) -> float:
    """Return the ``q``-th percentile (linear interpolation) of durations in seconds, in milliseconds.

    Args:
        seconds: measured durations.
        q: percentile in [0, 100].

    Returns:
        Milliseconds.

    Raises:
        ValueError: no durations.
    """
    a = np.asarray(seconds, dtype=np.float64)
    if a.size == 0:
        raise ValueError("no durations to take a percentile of")
    return float(np.percentile(a, q) * 1e3)
