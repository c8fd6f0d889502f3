"""The event writer process: records it loses are counted, a new writer takes over, shutdown writes all."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from conftest import two_variants
from test_lifecycle import BODY, count_events


def _writer_pids(router_pid: int) -> list[int]:
    """Pids of the router's event writer processes (its children running ``router.eventwriter``)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == router_pid and b"router.eventwriter" in cmdline:
            pids.append(int(entry.name))
    return pids


def _metric(text: str, name: str) -> int:
    return int(float(next(line.split()[-1] for line in text.splitlines() if line.startswith(name + " "))))


def test_a_killed_event_writer_is_replaced_and_what_it_held_is_counted_as_dropped(router_factory, models):
    r = router_factory(
        two_variants(models["a"], models["b"]),
        extra_env={"ROUTER_EVENTS_FLUSH_SECONDS": "30"},  # the writer holds records until shutdown
    )
    writers = _writer_pids(r.proc.pid)
    assert len(writers) == 1, writers
    with r.client() as c:
        for _ in range(40):
            assert c.post("/invocations", json=BODY).status_code == 200
        time.sleep(0.6)  # handed to the writer (every 0.1 s)
        os.kill(writers[0], signal.SIGKILL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            new = [p for p in _writer_pids(r.proc.pid) if p != writers[0]]
            if new:
                break
            time.sleep(0.1)
        assert new, "no new event writer started"
        for _ in range(30):
            assert c.post("/invocations", json=BODY).status_code == 200
        time.sleep(0.6)
        m = c.get("/metrics").text
    dropped = _metric(m, "router_events_dropped_total")
    assert dropped == 40, "the killed writer held the first 40 records"
    assert _metric(m, "router_events_buffered") == 30
    assert _metric(m, "router_events_sink_failures_total") >= 1
    assert r.stop() == 0
    assert count_events(r.events_root) == 30, "the new writer wrote the rest at shutdown"
    assert dropped + count_events(r.events_root) == 70


def test_shutdown_writes_every_record_the_writer_holds(router_factory, models):
    r = router_factory(
        two_variants(models["a"], models["b"]),
        extra_env={"ROUTER_EVENTS_FLUSH_SECONDS": "30", "ROUTER_EVENTS_FLUSH_ROWS": "1000000"},
    )
    with r.client() as c:
        for i in range(120):
            assert c.post("/invocations", json=BODY, headers={"X-Unit-Id": f"u{i}"}).status_code == 200
    assert count_events(r.events_root) == 0, "nothing is written before a flush is due"
    writers = _writer_pids(r.proc.pid)
    assert len(writers) == 1
    assert r.stop() == 0
    assert count_events(r.events_root) == 120
    assert not Path(f"/proc/{writers[0]}").exists(), "the writer exits with the router"
