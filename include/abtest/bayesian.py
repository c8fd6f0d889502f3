"""Bayesian view of an effect estimate under a normal likelihood.

With a flat prior the posterior of the effect is N(estimate, se^2). With a proper normal
prior N(m0, s0^2) it is normal with precision ``1/s0^2 + 1/se^2`` and mean
``(m0/s0^2 + estimate/se^2) / precision``. From the posterior N(m, s^2):

- chance to win (treatment beats control): ``P(effect > 0) = Phi(m/s)``;
- expected loss of shipping the treatment: ``E[max(0, -effect)] = s phi(m/s) - m Phi(-m/s)``;
- expected loss of keeping the control: ``E[max(0, effect)] = s phi(m/s) + m Phi(m/s)``.

"Win" means a larger metric; for a metric where lower is better, read ``1 - chance_to_win``.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

from scipy import stats

from include.abtest.errors import InvalidArgument

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class NormalPrior:
    """A proper normal prior on the effect (in the units of the chosen difference).

    Args:
        mean: prior mean of the effect.
        variance: prior variance, > 0.

    Raises:
        InvalidArgument: when the variance is not positive and finite.
    """

    mean: float = 0.0
    variance: float = 1.0

    def __post_init__(self) -> None:
        if not math.isfinite(self.mean):
            raise InvalidArgument(f"prior mean must be finite, got {self.mean!r}")
        if not (math.isfinite(self.variance) and self.variance > 0.0):
            raise InvalidArgument(f"prior variance must be positive, got {self.variance!r}")


@dataclass(frozen=True, slots=True)
class Posterior:
    """Normal posterior of the effect, with the decision quantities derived from it.

    Attributes:
        mean: posterior mean.
        sd: posterior standard deviation.
        chance_to_win: P(effect > 0).
        expected_loss: E[max(0, -effect)], the expected loss of shipping the treatment.
        expected_loss_control: E[max(0, effect)], the expected loss of keeping the control.
    """

    mean: float
    sd: float
    chance_to_win: float
    expected_loss: float
    expected_loss_control: float

    def credible_interval(self, level: float = 0.95) -> tuple[float, float]:
        """Central credible interval of the posterior.

        Args:
            level: probability mass inside the interval, in (0, 1).

        Returns:
            ``(low, high)``.

        Raises:
            InvalidArgument: when the level is out of range.
        """
        if not 0.0 < level < 1.0:
            raise InvalidArgument(f"level must lie in (0, 1), got {level!r}")
        z = float(stats.norm.isf((1.0 - level) / 2.0))
        return self.mean - z * self.sd, self.mean + z * self.sd


def posterior(estimate: float, se: float, prior: NormalPrior | None = None) -> Posterior:
    """Posterior of the effect given its estimate and standard error.

    Args:
        estimate: effect estimate (absolute or relative).
        se: its standard error, > 0.
        prior: a proper normal prior, or None for a flat prior.

    Returns:
        The posterior with chance to win and expected losses.

    Raises:
        InvalidArgument: when the estimate is not finite or se is not positive.
    """
    if not math.isfinite(estimate):
        raise InvalidArgument(f"estimate must be finite, got {estimate!r}")
    if not (math.isfinite(se) and se > 0.0):
        raise InvalidArgument(f"standard error must be positive, got {se!r}")
    if prior is None:
        mean, sd = estimate, se
    else:
        precision = 1.0 / prior.variance + 1.0 / se**2
        mean = (prior.mean / prior.variance + estimate / se**2) / precision
        sd = math.sqrt(1.0 / precision)
    z = mean / sd
    pdf = float(stats.norm.pdf(z))
    return Posterior(
        mean=mean,
        sd=sd,
        chance_to_win=float(stats.norm.cdf(z)),
        expected_loss=sd * pdf - mean * float(stats.norm.cdf(-z)),
        expected_loss_control=sd * pdf + mean * float(stats.norm.cdf(z)),
    )
