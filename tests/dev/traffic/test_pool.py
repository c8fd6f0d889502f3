"""The traffic pool is large enough that the demo's own traffic never reads as drift.

In-process: the drift detector (checked against reference values in ``tests/include/drift``) compares
what the generator would send with fresh draws of the same spec.
"""

from __future__ import annotations

import numpy as np

from include.drift.detect import compare
from include.synthetic.spec import FeatureSpec
from modelgate_dev.traffic.generator import TrafficConfig, input_pool


def test_inputs_cycled_from_the_default_pool_do_not_read_as_drift(spec: FeatureSpec) -> None:
    pool_size = TrafficConfig("http://127.0.0.1:1", "churn").pool_size
    sent = 8_000  # sampled inputs the drift monitor read after a long demo run
    names = [f.name for f in spec.features]
    reference = spec.sample(5_000, seed=99)
    flagged = []
    for seed in range(3):
        pool = input_pool(spec, pool_size, seed)
        current = pool[np.random.default_rng(seed).integers(0, len(pool), sent)]
        pairs = {
            n: (reference[n].to_numpy(float), current[:, i].astype(float), False)
            for i, n in enumerate(names)
            if not reference[n].isna().any()  # missing draws are sent as fill_missing on purpose
        }
        result = compare(pairs)
        flagged.append(sorted(n for n, f in result["features"].items() if f["drift"]))
    assert flagged == [[], [], []], flagged
