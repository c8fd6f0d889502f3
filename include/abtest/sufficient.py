"""Sufficient statistics per variant: what an analysis keeps after reducing raw events.

Each class holds sums only, so statistics of days, partitions or workers merge by
addition (``a + b`` or ``a.merge(b)``, and ``sum([...])`` works too) and the cost of a test
does not grow with the number of events. The analysis reduces events per unit first (one
value per randomisation unit), then per variant with ``from_values``.

- :class:`MeanStats`: ``n``, ``sum``, ``sum_squares`` of a per-unit value.
- :class:`ProportionStats`: ``n`` units and ``successes`` (units that converted).
- :class:`RatioStats`: per-unit numerator and denominator sums, squares and cross-products
  (e.g. revenue per session), analysed with the delta method.
- :class:`CupedStats`: a mean metric plus the pre-period covariate's sum, sum of squares and
  the sum of cross-products, for CUPED regression adjustment.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from include.abtest.errors import InvalidStatistics
from include.abtest.summable import Summable as _Summable
from include.abtest.summable import as_vector as _as_vector
from include.abtest.summable import centred as _centred
from include.abtest.summable import check_cauchy_schwarz as _check_cauchy_schwarz
from include.abtest.summable import check_finite as _check_finite
from include.abtest.summable import check_n as _check_n
from include.abtest.summable import comoment as _comoment

log = logging.getLogger(__name__)

@dataclass(frozen=True, slots=True)
class MeanStats(_Summable):
    """Sufficient statistics of a per-unit value for a mean metric.

    Args:
        n: number of units.
        sum: sum of the per-unit values.
        sum_squares: sum of the squared per-unit values.

    Raises:
        InvalidStatistics: when ``n`` is negative or the sums imply a variance below zero.
    """

    n: int
    sum: float
    sum_squares: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "n", _check_n(self.n))
        object.__setattr__(self, "sum", _check_finite("sum", self.sum))
        object.__setattr__(self, "sum_squares", _check_finite("sum_squares", self.sum_squares))
        if self.n == 0 and (self.sum != 0.0 or self.sum_squares != 0.0):
            raise InvalidStatistics("n is 0 but sum or sum_squares is not")
        _centred(self.n, self.sum, self.sum_squares, "sum_squares")

    @classmethod
    def from_values(cls, values: npt.ArrayLike) -> MeanStats:
        """Reduce one value per unit to sufficient statistics.

        Args:
            values: one-dimensional array of per-unit values.

        Returns:
            The statistics of those units.

        Raises:
            InvalidStatistics: when the values are not a finite one-dimensional array.
        """
        arr = _as_vector(values, "values")
        return cls(n=int(arr.size), sum=float(arr.sum()), sum_squares=float(np.dot(arr, arr)))

    @property
    def mean(self) -> float:
        """Mean per unit (NaN without units)."""
        return self.sum / self.n if self.n > 0 else math.nan

    @property
    def sum_squared_deviations(self) -> float:
        """Sum of squared deviations from the mean."""
        return _centred(self.n, self.sum, self.sum_squares, "sum_squares")

    @property
    def variance(self) -> float:
        """Sample variance per unit (ddof 1; NaN below two units)."""
        return self.sum_squared_deviations / (self.n - 1) if self.n > 1 else math.nan


@dataclass(frozen=True, slots=True)
class ProportionStats(_Summable):
    """Sufficient statistics of a rate: units and the units that converted.

    The per-unit variance is p(1-p), as for a Bernoulli outcome.

    Args:
        n: number of units.
        successes: units with outcome 1.

    Raises:
        InvalidStatistics: when ``n`` is negative or ``successes`` is outside [0, n].
    """

    n: int
    successes: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "n", _check_n(self.n))
        object.__setattr__(self, "successes", _check_n(self.successes, "successes"))
        if self.successes > self.n:
            raise InvalidStatistics(f"successes ({self.successes}) exceed n ({self.n})")

    @classmethod
    def from_values(cls, values: npt.ArrayLike) -> ProportionStats:
        """Reduce one 0/1 outcome per unit to sufficient statistics.

        Args:
            values: one-dimensional array of 0/1 (or boolean) outcomes.

        Returns:
            The statistics of those units.

        Raises:
            InvalidStatistics: when a value is not 0 or 1.
        """
        arr = _as_vector(values, "values")
        if not np.all((arr == 0.0) | (arr == 1.0)):
            raise InvalidStatistics("proportion values must be 0 or 1")
        return cls(n=int(arr.size), successes=int(arr.sum()))

    @property
    def sum(self) -> float:
        """Number of successes, as a float (the sum of the 0/1 outcomes)."""
        return float(self.successes)

    @property
    def mean(self) -> float:
        """Conversion rate (NaN without units)."""
        return self.successes / self.n if self.n > 0 else math.nan

    @property
    def variance(self) -> float:
        """Per-unit variance p(1-p) (NaN without units)."""
        p = self.mean
        return p * (1.0 - p) if self.n > 0 else math.nan


@dataclass(frozen=True, slots=True)
class RatioStats(_Summable):
    """Sufficient statistics of a ratio metric sum(Y)/sum(X) over units (delta method).

    Each unit contributes a numerator Y (e.g. revenue) and a denominator X (e.g. sessions).

    Args:
        n: number of units.
        num_sum: sum of Y.
        num_sum_squares: sum of Y**2.
        den_sum: sum of X.
        den_sum_squares: sum of X**2.
        cross_sum: sum of X*Y.

    Raises:
        InvalidStatistics: when ``n`` is negative or the sums are impossible.
    """

    n: int
    num_sum: float
    num_sum_squares: float
    den_sum: float
    den_sum_squares: float
    cross_sum: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "n", _check_n(self.n))
        for name in ("num_sum", "num_sum_squares", "den_sum", "den_sum_squares", "cross_sum"):
            object.__setattr__(self, name, _check_finite(name, getattr(self, name)))
        if self.n == 0 and any(
            getattr(self, f) != 0.0
            for f in ("num_sum", "num_sum_squares", "den_sum", "den_sum_squares", "cross_sum")
        ):
            raise InvalidStatistics("n is 0 but a sum is not")
        cyy = _centred(self.n, self.num_sum, self.num_sum_squares, "num_sum_squares")
        cxx = _centred(self.n, self.den_sum, self.den_sum_squares, "den_sum_squares")
        cxy = _comoment(self.n, self.den_sum, self.num_sum, self.cross_sum)
        _check_cauchy_schwarz(cxy, cxx, cyy, "cross_sum")

    @classmethod
    def from_values(cls, numerators: npt.ArrayLike, denominators: npt.ArrayLike) -> RatioStats:
        """Reduce per-unit numerators and denominators to sufficient statistics.

        Args:
            numerators: one-dimensional array of Y per unit.
            denominators: one-dimensional array of X per unit, same length.

        Returns:
            The statistics of those units.

        Raises:
            InvalidStatistics: when the arrays differ in length or are not finite.
        """
        y = _as_vector(numerators, "numerators")
        x = _as_vector(denominators, "denominators")
        if y.shape != x.shape:
            raise InvalidStatistics(f"numerators ({y.size}) and denominators ({x.size}) differ in length")
        return cls(
            n=int(y.size),
            num_sum=float(y.sum()),
            num_sum_squares=float(np.dot(y, y)),
            den_sum=float(x.sum()),
            den_sum_squares=float(np.dot(x, x)),
            cross_sum=float(np.dot(x, y)),
        )

    @property
    def mean(self) -> float:
        """The ratio sum(Y)/sum(X) (NaN when sum(X) is zero)."""
        return self.num_sum / self.den_sum if self.den_sum != 0.0 else math.nan

    @property
    def variance(self) -> float:
        """Per-unit delta-method variance of the ratio; ``variance / n`` is its squared SE.

        var = vY/mX^2 - 2 mY cXY/mX^3 + mY^2 vX/mX^4 with per-unit means m, sample
        variances v and covariance c (ddof 1). NaN below two units or when sum(X) is zero.
        """
        if self.n < 2 or self.den_sum == 0.0:
            return math.nan
        n = self.n
        my = self.num_sum / n
        mx = self.den_sum / n
        vy = _centred(n, self.num_sum, self.num_sum_squares, "num_sum_squares") / (n - 1)
        vx = _centred(n, self.den_sum, self.den_sum_squares, "den_sum_squares") / (n - 1)
        cxy = _comoment(n, self.den_sum, self.num_sum, self.cross_sum) / (n - 1)
        return vy / mx**2 - 2.0 * my * cxy / mx**3 + my**2 * vx / mx**4


@dataclass(frozen=True, slots=True)
class CupedStats(_Summable):
    """Sufficient statistics of a mean metric with a pre-period covariate (CUPED).

    Args:
        n: number of units.
        sum: sum of the per-unit metric in the experiment period (post).
        sum_squares: sum of squared post values.
        pre_sum: sum of the per-unit covariate from the pre-period.
        pre_sum_squares: sum of squared pre values.
        cross_sum: sum of post*pre.

    Raises:
        InvalidStatistics: when ``n`` is negative or the sums are impossible.
    """

    n: int
    sum: float
    sum_squares: float
    pre_sum: float
    pre_sum_squares: float
    cross_sum: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "n", _check_n(self.n))
        for name in ("sum", "sum_squares", "pre_sum", "pre_sum_squares", "cross_sum"):
            object.__setattr__(self, name, _check_finite(name, getattr(self, name)))
        if self.n == 0 and any(
            getattr(self, f) != 0.0 for f in ("sum", "sum_squares", "pre_sum", "pre_sum_squares", "cross_sum")
        ):
            raise InvalidStatistics("n is 0 but a sum is not")
        cyy = _centred(self.n, self.sum, self.sum_squares, "sum_squares")
        cxx = _centred(self.n, self.pre_sum, self.pre_sum_squares, "pre_sum_squares")
        cxy = _comoment(self.n, self.pre_sum, self.sum, self.cross_sum)
        _check_cauchy_schwarz(cxy, cxx, cyy, "cross_sum")

    @classmethod
    def from_values(cls, post: npt.ArrayLike, pre: npt.ArrayLike) -> CupedStats:
        """Reduce per-unit metric values and their pre-period covariate to sufficient statistics.

        Args:
            post: one-dimensional array of the metric per unit in the experiment.
            pre: one-dimensional array of the same unit's pre-period covariate, same length.

        Returns:
            The statistics of those units.

        Raises:
            InvalidStatistics: when the arrays differ in length or are not finite.
        """
        y = _as_vector(post, "post")
        x = _as_vector(pre, "pre")
        if y.shape != x.shape:
            raise InvalidStatistics(f"post ({y.size}) and pre ({x.size}) differ in length")
        return cls(
            n=int(y.size),
            sum=float(y.sum()),
            sum_squares=float(np.dot(y, y)),
            pre_sum=float(x.sum()),
            pre_sum_squares=float(np.dot(x, x)),
            cross_sum=float(np.dot(x, y)),
        )

    @property
    def post(self) -> MeanStats:
        """Statistics of the metric alone (what an unadjusted test uses)."""
        return MeanStats(n=self.n, sum=self.sum, sum_squares=self.sum_squares)

    @property
    def pre(self) -> MeanStats:
        """Statistics of the pre-period covariate alone."""
        return MeanStats(n=self.n, sum=self.pre_sum, sum_squares=self.pre_sum_squares)

    @property
    def mean(self) -> float:
        """Unadjusted mean of the metric."""
        return self.post.mean

    @property
    def pre_sum_squared_deviations(self) -> float:
        """Sum of squared deviations of the covariate."""
        return _centred(self.n, self.pre_sum, self.pre_sum_squares, "pre_sum_squares")

    @property
    def cross_deviations(self) -> float:
        """Sum of cross-products of deviations of metric and covariate."""
        return _comoment(self.n, self.pre_sum, self.sum, self.cross_sum)


ArmStats = MeanStats | ProportionStats | RatioStats | CupedStats
"""Any kind of per-variant sufficient statistics accepted by :func:`include.abtest.compare`."""
