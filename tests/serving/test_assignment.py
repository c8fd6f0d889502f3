"""Variant assignment: exact shares, stickiness, monotone weight changes; and the same over HTTP."""

from __future__ import annotations

from collections import Counter

import pytest
from conftest import two_variants
from router.assignment import Assigner, assign

UNITS = [f"user-{i}" for i in range(20_000)]


@pytest.mark.parametrize(
    "weights",
    [
        [("champion", 9500), ("canary", 500)],
        [("champion", 5000), ("canary", 5000)],
        [("a", 2500), ("b", 2500), ("c", 4000), ("d", 1000)],
        [("champion", 9999), ("canary", 1)],
    ],
)
def test_observed_shares_over_20000_units_are_within_one_point_of_the_weights(weights):
    a = Assigner("churn", "exp-1", weights)
    counts = Counter(a.sticky(u.encode()) for u in UNITS)
    for name, w in weights:
        assert abs(counts[name] / len(UNITS) - w / 10_000) < 0.01, (name, counts)


def test_a_unit_gets_the_same_variant_every_time_and_from_a_fresh_assigner():
    weights = [("champion", 7000), ("canary", 3000)]
    first = [Assigner("churn", "s", weights).sticky(u.encode()) for u in UNITS[:2000]]
    again = [Assigner("churn", "s", weights).sticky(u.encode()) for u in UNITS[:2000]]
    assert first == again
    assert first == [assign("churn", "s", u, weights) for u in UNITS[:2000]]


def test_raising_the_canary_from_5_to_25_percent_moves_no_canary_unit_out():
    before = Assigner("churn", "exp-1", [("champion", 9500), ("canary", 500)])
    after = Assigner("churn", "exp-1", [("champion", 7500), ("canary", 2500)])
    was = {u for u in UNITS if before.sticky(u.encode()) == "canary"}
    now = {u for u in UNITS if after.sticky(u.encode()) == "canary"}
    assert was <= now
    assert abs(len(now) / len(UNITS) - 0.25) < 0.01
    # only the units the change needs moved: everyone else kept the champion
    moved = {u for u in UNITS if before.sticky(u.encode()) != after.sticky(u.encode())}
    assert moved == now - was


def test_among_three_variants_raising_one_keeps_every_unit_it_already_had():
    before = Assigner("m", "", [("a", 6000), ("b", 2000), ("c", 2000)])
    after = Assigner("m", "", [("a", 4000), ("b", 2000), ("c", 4000)])
    for u in UNITS[:5000]:
        x, y = before.sticky(u.encode()), after.sticky(u.encode())
        if x == "c":
            assert y == "c"


def test_salt_reshuffles_units_and_zero_weight_is_never_chosen():
    w = [("champion", 5000), ("canary", 5000)]
    a = [Assigner("churn", "s1", w).sticky(u.encode()) for u in UNITS[:2000]]
    b = [Assigner("churn", "s2", w).sticky(u.encode()) for u in UNITS[:2000]]
    assert sum(x != y for x, y in zip(a, b)) > 700
    z = Assigner("churn", "s1", [("champion", 10000), ("canary", 0)])
    assert {z.sticky(u.encode()) for u in UNITS[:2000]} == {"champion"}
    assert {z.random(i / 1000) for i in range(1000)} == {"champion"}


def test_http_split_is_sticky_and_close_to_the_weights(inproc_factory, models):
    r = inproc_factory(two_variants(models["a"], models["b"], canary_bp=3000))
    expected = Assigner("churn", "exp-1", [("champion", 7000), ("canary", 3000)])
    body = {"inputs": [[0.1, 0.2, 0.3, 0.4]]}
    seen: dict[str, str] = {}
    with r.client() as c:
        for i in range(600):
            uid = f"u{i}"
            resp = c.post("/invocations", json=body, headers={"X-Unit-Id": uid})
            assert resp.status_code == 200
            seen[uid] = resp.headers["x-variant"]
            assert seen[uid] == expected.sticky(uid.encode())
        for i in range(0, 600, 7):  # asked again: same answer
            resp = c.post("/invocations", json=body, headers={"X-Unit-Id": f"u{i}"})
            assert resp.headers["x-variant"] == seen[f"u{i}"]
        share = sum(v == "canary" for v in seen.values()) / len(seen)
        assert abs(share - 0.30) < 0.06
        # without a unit id the split is random by weight
        rand = Counter(c.post("/invocations", json=body).headers["x-variant"] for _ in range(400))
        assert 0.18 < rand["canary"] / 400 < 0.42
