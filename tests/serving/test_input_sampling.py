"""Sampled input logging (issue 15): the ``inputs`` column for a share of consenting units' requests.

In-process against ``create_app`` with the real event writer process; the expected share's bounds come
from scipy's binomial distribution.
"""

from __future__ import annotations

import json

import pyarrow.dataset as ds
import pytest
from conftest import two_variants
from scipy.stats import binom


def read_events(root):
    return ds.dataset(str(root), format="parquet", partitioning="hive").to_table().to_pylist()


def send(router, n, consent, shadow_ok=True):
    rows = {}
    with router.client() as c:
        for i in range(n):
            row = [i / 7, -1.0, 2.0 + i, 0.25]
            rid = f"{'c' if consent else 'n'}-{i}"
            r = c.post(
                "/invocations",
                json={"inputs": [row, [9.0, 9.0, 9.0, 9.0]]},
                headers={"X-Consent": "true" if consent else "false", "X-Request-Id": rid, "X-Unit-Id": rid},
            )
            assert r.status_code == 200, r.text
            rows[rid] = row
    return rows


@pytest.fixture
def routes(models):
    return two_variants(
        models["a"],
        models["b"],
        canary_bp=5000,
        shadow={"variant": "sh", "uri": str(models["c"]), "percent": 100},
    )


def test_every_consenting_request_carries_its_first_input_row_at_sample_1(inproc_factory, routes, tmp_path):
    r = inproc_factory(routes, events_enabled=True, events_input_sample=1.0)
    consenting = send(r, 30, consent=True)
    refusing = send(r, 30, consent=False)
    r.close()
    events = read_events(tmp_path / "inproc" / "events")
    primary = {e["request_id"]: e for e in events if not e["shadow"]}
    assert len(primary) == 60
    for rid, row in consenting.items():
        got = json.loads(primary[rid]["inputs"])
        assert list(got) == ["input"]
        assert got["input"] == pytest.approx(row, rel=1e-6)  # float32 values of the first row only
    assert all(primary[rid]["inputs"] is None for rid in refusing)  # no consent: never sampled
    assert all(e["inputs"] is None for e in events if e["shadow"])


def test_sample_0_records_no_inputs_and_a_share_is_binomial(inproc_factory, routes, tmp_path):
    off = inproc_factory(routes, name="off", events_enabled=True, events_input_sample=0.0)
    send(off, 40, consent=True)
    off.close()
    assert all(e["inputs"] is None for e in read_events(tmp_path / "off" / "events"))

    p, n = 0.25, 400
    part = inproc_factory(routes, name="part", events_enabled=True, events_input_sample=p)
    send(part, n, consent=True)
    part.close()
    sampled = sum(1 for e in read_events(tmp_path / "part" / "events") if e["inputs"] is not None)
    lo, hi = binom.ppf(0.0005, n, p), binom.ppf(0.9995, n, p)  # a 99.9 % band for 400 draws
    assert lo <= sampled <= hi, (sampled, lo, hi)
