"""Validated sums and their merge: the arithmetic under :mod:`include.abtest.sufficient`.

The statistics classes hold counts and sums only; this module checks those values (integer
counts, finite sums, variances and covariances that a real set of units could give) and adds
two statistics of the same kind field by field (:class:`Summable`).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Self

import numpy as np
import numpy.typing as npt

from include.abtest.errors import InvalidStatistics

# Sums of squares computed from sums lose precision by cancellation; a centred second
# moment this far below zero (relative to the sum of squares) is rounding, not bad input.
_RELATIVE_TOLERANCE = 1e-9


def check_n(n: Any, name: str = "n") -> int:
    """Return ``n`` as an int; raises :class:`InvalidStatistics` unless it is a count >= 0."""
    if isinstance(n, bool) or not isinstance(n, int | np.integer):
        raise InvalidStatistics(f"{name} must be an integer, got {n!r}")
    if n < 0:
        raise InvalidStatistics(f"{name} must be >= 0, got {n}")
    return int(n)


def check_finite(name: str, value: Any) -> float:
    """Return ``value`` as a float; raises :class:`InvalidStatistics` unless it is a finite number."""
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise InvalidStatistics(f"{name} must be a number, got {value!r}")
    out = float(value)
    if not math.isfinite(out):
        raise InvalidStatistics(f"{name} must be finite, got {value!r}")
    return out


def centred(n: int, s: float, ss: float, name: str) -> float:
    """Sum of squared deviations ``ss - s**2/n``; raises if clearly negative."""
    if n == 0:
        return 0.0
    dev = ss - s * s / n
    if dev < 0.0:
        scale = max(abs(ss), s * s / n)
        if dev < -_RELATIVE_TOLERANCE * scale:
            raise InvalidStatistics(
                f"{name} gives a variance below zero: sum of squares {ss!r} is less than "
                f"sum**2/n = {s * s / n!r}"
            )
        return 0.0
    return dev


def comoment(n: int, sx: float, sy: float, sxy: float) -> float:
    """Sum of cross-products of deviations ``sxy - sx*sy/n``."""
    if n == 0:
        return 0.0
    return sxy - sx * sy / n


def check_cauchy_schwarz(cxy: float, cxx: float, cyy: float, name: str) -> None:
    """Raise :class:`InvalidStatistics` when a covariance exceeds what its variances allow."""
    bound = math.sqrt(cxx * cyy)
    if abs(cxy) > bound * (1.0 + 1e-7) + 1e-12 * (abs(cxy) + 1.0):
        raise InvalidStatistics(
            f"{name} is inconsistent with the sums of squares: |covariance| exceeds the product "
            "of the standard deviations"
        )


def as_vector(values: npt.ArrayLike, name: str) -> npt.NDArray[np.float64]:
    """Return ``values`` as a finite one-dimensional float array, or raise :class:`InvalidStatistics`."""
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise InvalidStatistics(f"{name} must be an array of numbers") from e
    if arr.ndim != 1:
        raise InvalidStatistics(f"{name} must be one-dimensional, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise InvalidStatistics(f"{name} contains NaN or infinite values")
    return arr


class Summable:
    """Field-wise addition for the frozen statistics dataclasses."""

    __slots__ = ()

    def merge(self, other: Self) -> Self:
        """Combine the statistics of two disjoint sets of units.

        Args:
            other: statistics of the same kind, e.g. another day or partition.

        Returns:
            Statistics of the union of both sets of units.

        Raises:
            TypeError: when ``other`` is a different kind of statistics.
        """
        if type(other) is not type(self):
            raise TypeError(f"cannot merge {type(self).__name__} with {type(other).__name__}")
        values = {
            f.name: getattr(self, f.name) + getattr(other, f.name)
            for f in dataclasses.fields(self)  # type: ignore[arg-type]
        }
        return type(self)(**values)

    def __add__(self, other: Self) -> Self:
        if type(other) is not type(self):
            return NotImplemented
        return self.merge(other)

    def __radd__(self, other: object) -> Self:
        # Lets ``sum(list_of_stats)`` start from the integer 0.
        if isinstance(other, int) and not isinstance(other, bool) and other == 0:
            return self
        return NotImplemented

    @classmethod
    def empty(cls) -> Self:
        """Statistics of no units (the neutral element of ``merge``).

        Returns:
            An instance with every count and sum zero.
        """
        zeros = {f.name: 0 if f.type in ("int", int) else 0.0 for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        return cls(**zeros)
