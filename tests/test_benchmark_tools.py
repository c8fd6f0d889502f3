"""The analysis parts of the benchmark scripts (the scripts themselves need wrk and minutes of load)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from benchmarks import instructions, tail


def _requests(slow: range, n: int = 1000) -> np.ndarray:
    """Back-to-back requests of 100 µs (session.run 10 µs); those in ``slow`` take 4x as long throughout."""
    rows, t = [], 0
    for i in range(n):
        k = 4 if i in slow else 1
        start, run_start = t, t + 30_000 * k
        run_end = run_start + 10_000 * k
        end = start + 100_000 * k
        rows.append((start, run_start, run_end, end, end - start))
        t = end
    return np.array(rows, dtype=np.int64)


def test_tail_finds_the_slow_windows_and_the_slow_cpu() -> None:
    a = tail.analyse(_requests(range(500, 516)), window=16)
    assert a["run_out"] == pytest.approx(10.0)
    assert a["run_in"] == pytest.approx(40.0)  # the fixed call was 4x slower where the p99 windows are
    assert a["on_cpu"] == pytest.approx(1.0)
    assert a["window_p50"] == pytest.approx(1.6)
    assert a["window_p99"] > 4.0


def test_tail_without_slow_requests_compares_like_with_like() -> None:
    a = tail.analyse(_requests(range(0)), window=16)
    assert a["run_in"] == pytest.approx(a["run_out"])


def test_instructions_reads_wrk_request_count() -> None:
    out = "Running 10s test @ http://127.0.0.1:1/\n  1925 requests in 10.01s, 512.35KB read\nRequests/sec: 192.3\n"
    assert instructions.requests_of(out) == 1925
    with pytest.raises(RuntimeError, match="no request count"):
        instructions.requests_of("unable to connect")


def test_instructions_sums_new_dump_files(tmp_path: Path) -> None:
    prefix = tmp_path / "cg-router"
    (tmp_path / "cg-router.11").write_text("totals: 5\n")  # the dump at start-up: not counted
    before = {str(tmp_path / "cg-router.11")}
    (tmp_path / "cg-router.11.1").write_text("events: Ir\nsummary: 1000\n")
    (tmp_path / "cg-router.12.1").write_text("events: Ir\ntotals: 234\n")
    assert instructions.dumped_instructions(prefix, before, timeout=2) == 1234
