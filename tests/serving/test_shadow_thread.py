"""The shadow scorer's thread exists only once a request is shadowed (in-process router)."""

from __future__ import annotations

import threading
import time

from serving.conftest import two_variants

BODY = {"inputs": [[0.5, -1.0, 2.0, 0.25]]}


def _shadow_threads() -> set[int]:
    return {t.ident for t in threading.enumerate() if t.name == "shadow" and t.ident is not None}


def _requests(text: str, variant: str) -> float:
    return sum(
        float(line.split()[-1])
        for line in text.splitlines()
        if line.startswith("router_requests_total{") and f'variant="{variant}"' in line
    )


def test_a_router_without_a_shadow_starts_no_shadow_thread_and_one_with_a_shadow_scores_on_it(
    inproc_factory, models
) -> None:
    before = _shadow_threads()
    plain = inproc_factory(two_variants(models["a"], models["b"]), name="plain")
    with plain.client() as c:
        assert all(c.post("/invocations", json=BODY).status_code == 200 for _ in range(5))
    assert _shadow_threads() == before, "no thread waking 50 times a second when nothing is shadowed"

    shadowed = inproc_factory(
        two_variants(models["a"], models["b"], shadow={"variant": "shadow", "uri": str(models["c"]), "percent": 100}),
        name="shadowed",
    )
    with shadowed.client() as c:
        assert _shadow_threads() == before, "not before the first shadowed request"
        assert all(c.post("/invocations", json=BODY).status_code == 200 for _ in range(5))
        assert len(_shadow_threads() - before) == 1
        deadline = time.monotonic() + 10
        while _requests(c.get("/metrics").text, "shadow") < 5 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _requests(c.get("/metrics").text, "shadow") == 5, "every shadowed request is scored"
    shadowed.close()
    assert _shadow_threads() == before, "stopping the router ends the thread"
