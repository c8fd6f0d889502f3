"""A/B statistics engine on per-variant sufficient statistics (no Airflow needed).

Reduce events per unit, then per variant, into :class:`MeanStats`, :class:`ProportionStats`,
:class:`RatioStats` or :class:`CupedStats` (they merge with ``+``), then call
:func:`compare`. See ``docs/abtest.md`` for the methods and formulas.
"""

from __future__ import annotations

from include.abtest.bayesian import NormalPrior, Posterior, posterior
from include.abtest.compare import ComparisonResult, SequentialConfig, compare
from include.abtest.errors import AbTestError, InvalidArgument, InvalidStatistics
from include.abtest.multiple import MultipleTestingResult, adjust_p_values, benjamini_hochberg, holm
from include.abtest.power import minimum_detectable_effect, proportion_variance, sample_size_per_arm
from include.abtest.sequential import (
    DEFAULT_TUNING_PARAMETER,
    sequential_halfwidth,
    sequential_p_value,
    sequential_rho,
)
from include.abtest.srm import SRM_THRESHOLD, SrmResult, srm_test
from include.abtest.sufficient import ArmStats, CupedStats, MeanStats, ProportionStats, RatioStats

__all__ = [
    "DEFAULT_TUNING_PARAMETER",
    "SRM_THRESHOLD",
    "AbTestError",
    "ArmStats",
    "ComparisonResult",
    "CupedStats",
    "InvalidArgument",
    "InvalidStatistics",
    "MeanStats",
    "MultipleTestingResult",
    "NormalPrior",
    "Posterior",
    "ProportionStats",
    "RatioStats",
    "SequentialConfig",
    "SrmResult",
    "adjust_p_values",
    "benjamini_hochberg",
    "compare",
    "holm",
    "minimum_detectable_effect",
    "posterior",
    "proportion_variance",
    "sample_size_per_arm",
    "sequential_halfwidth",
    "sequential_p_value",
    "sequential_rho",
    "srm_test",
]
