"""Reference data for the synthetic-data tests: a mixed-type frame with known latent dependence."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

LATENT_CORRELATION = np.array(
    [
        [1.0, 0.6, -0.3, 0.2],
        [0.6, 1.0, 0.1, 0.4],
        [-0.3, 0.1, 1.0, 0.0],
        [0.2, 0.4, 0.0, 1.0],
    ]
)


def make_reference(n: int = 20_000, seed: int = 1) -> pd.DataFrame:
    """Mixed-type frame drawn from a Gaussian copula: normal, lognormal, Poisson, text, bool, float32."""
    rng = np.random.default_rng(seed)
    z = rng.multivariate_normal(np.zeros(4), LATENT_CORRELATION, size=n)
    return pd.DataFrame(
        {
            "income": z[:, 0] * 2.0 + 5.0,
            "spend": np.exp(z[:, 1]),
            "visits": stats.poisson.ppf(stats.norm.cdf(z[:, 2]), 30).astype(np.int64),
            "plan": np.where(z[:, 3] > 0.5, "premium", "basic"),
            "active": z[:, 0] > 0,
            "score": z[:, 1].astype(np.float32),
            "tier": np.digitize(z[:, 3], [-1.0, 0.0, 1.0]).astype(np.int64),
        }
    )
