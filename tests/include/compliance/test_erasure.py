"""Erasure of a data subject (issue 17): event files written by the router's own sink, derived tables,
row counts before and after, idempotence, and a real process killed with SIGKILL mid-rewrite."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from support import REPO
from support_privacy import SUBJECT, rows_of, write_events

from include.compliance.erasure import ErasureRequest, erase_subject
from include.compliance.errors import InvalidErasureRequest
from include.registry.audit import read_records


def per_partition(rows: list[dict], unit_filter=None) -> Counter:
    return Counter(f"{r['ts']:%H}" for r in rows if unit_filter is None or unit_filter(r["unit_id"]))


@pytest.fixture
def data(tmp_path: Path) -> dict[str, Path]:
    events = tmp_path / "events"
    write_events(events)
    derived = tmp_path / "batch-out" / "date=2026-11-30"
    derived.mkdir(parents=True)
    pq.write_table(
        pa.table({"customer": [SUBJECT, "unit-1", SUBJECT, "unit-2"], "score": [0.1, 0.2, 0.3, 0.4]}),
        derived / "part-0.parquet",
    )
    return {"events": events, "derived": tmp_path / "batch-out"}


def test_erasure_removes_the_subject_from_three_partitions_and_nothing_else(data: dict[str, Path]) -> None:
    before = rows_of(data["events"])
    assert per_partition(before, lambda u: u == SUBJECT) == {"10": 10, "11": 10, "12": 10}
    others_before = sorted(r["request_id"] for r in before if r["unit_id"] != SUBJECT)

    req = ErasureRequest.from_conf(
        {"unit_id": SUBJECT, "reason": "PDPL request #7", "requested_by": "dpo@example"}
    )
    rep = erase_subject(
        req,
        actor="tester",
        run_id="run-1",
        events_root=str(data["events"]),
        extra_roots=f"{data['derived']}#customer",
    )
    after = rows_of(data["events"])
    assert len(after) == len(before) - 30, "exactly the subject's 30 records went"
    assert all(r["unit_id"] != SUBJECT for r in after)
    assert sorted(r["request_id"] for r in after) == others_before, "every other record is still there, once"
    assert per_partition(after) == {"10": 90, "11": 90, "12": 90, "13": 100}
    # the sampled inputs of the subject's records went with them
    sampled_before = {r["inputs"] for r in before if r["inputs"] and r["unit_id"] == SUBJECT}
    assert sampled_before and not sampled_before & {r["inputs"] for r in after}
    derived = pq.read_table(data["derived"] / "date=2026-11-30" / "part-0.parquet").to_pylist()
    assert [r["customer"] for r in derived] == ["unit-1", "unit-2"]

    assert rep["rows_removed"] == 32 and rep["files_rewritten"] == 7 and rep["files_deleted"] == 0
    assert rep["files_scanned"] == 9
    assert [t["rows_removed"] for t in rep["targets"]] == [30, 2]
    assert rep["partitions"] == [
        "derived:date=2026-11-30",
        "events:date=2026-11-30/hour=10",
        "events:date=2026-11-30/hour=11",
        "events:date=2026-11-30/hour=12",
    ]
    audit = [r for r in read_records() if r.action == "erase_subject"]
    last = audit[-1]
    assert last.id == rep["audit_id"] and last.actor == "tester" and last.run_id == "run-1"
    assert last.subject == rep["subject"].join(("subject:", "")) and rep["subject"].startswith("hmac-sha256:")
    assert last.after["rows_removed"] == 32 and last.after["requested_by"] == "dpo@example"
    dumped = json.dumps([r.__dict__ for r in audit], default=str)
    assert SUBJECT not in dumped, "the audit log never holds the id in clear"


def test_a_second_run_finds_nothing_and_touches_no_file(data: dict[str, Path]) -> None:
    req = ErasureRequest(SUBJECT, "r", "me")
    first = erase_subject(req, actor="t", events_root=str(data["events"]), extra_roots="")
    files = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in data["events"].rglob("*.parquet")}
    again = erase_subject(req, actor="t", events_root=str(data["events"]), extra_roots="")
    assert first["rows_removed"] == 30 and again["rows_removed"] == 0 and again["files_rewritten"] == 0
    assert again["subject"] == first["subject"], "the keyed hash is stable"
    assert {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in data["events"].rglob("*.parquet")} == files


def test_a_subject_whose_file_holds_only_them_loses_the_file(tmp_path: Path) -> None:
    root = tmp_path / "events" / "date=2026-11-30" / "hour=01"
    root.mkdir(parents=True)
    pq.write_table(pa.table({"unit_id": [SUBJECT, SUBJECT], "x": [1, 2]}), root / "part-a.parquet")
    pq.write_table(pa.table({"unit_id": ["other"], "x": [3]}), root / "part-b.parquet")
    rep = erase_subject(
        ErasureRequest(SUBJECT, "r", "me"), actor="t", events_root=str(tmp_path / "events"), extra_roots=""
    )
    assert rep["files_deleted"] == 1 and not (root / "part-a.parquet").exists()
    assert pq.read_table(root / "part-b.parquet").num_rows == 1


@pytest.mark.parametrize(
    ("conf", "message"),
    [
        ({"reason": "r", "requested_by": "me"}, "conf.unit_id is required"),
        ({"unit_id": "  ", "reason": "r", "requested_by": "me"}, "conf.unit_id is required"),
        ({"unit_id": "u", "reason": 3, "requested_by": "me"}, "conf.reason is required"),
        ({"unit_id": "u", "reason": "r"}, "conf.requested_by is required"),
        ({"unit_id": "u" * 600, "reason": "r", "requested_by": "me"}, "longer than 512"),
    ],
)
def test_a_malformed_request_is_refused_with_its_problem_named(conf: dict, message: str) -> None:
    with pytest.raises(InvalidErasureRequest, match=message):
        ErasureRequest.from_conf(conf)


_KILL_SCRIPT = r"""
import os, signal, sys
from include.compliance.erasure import ErasureRequest, erase_subject
seen = []
def hook(stage, path):
    if stage == "writing":
        seen.append(path)
        if len(seen) == int(sys.argv[2]):
            os.kill(os.getpid(), signal.SIGKILL)  # half of the new file is on disk, not renamed
erase_subject(ErasureRequest("person-42", "r", "me"), actor="t", events_root=sys.argv[1], extra_roots="",
              progress=hook)
"""


def test_a_process_killed_mid_rewrite_leaves_old_or_new_files_and_a_rerun_completes(
    data: dict[str, Path],
) -> None:
    before = rows_of(data["events"])
    files_before = sorted(p.relative_to(data["events"]) for p in data["events"].rglob("*.parquet"))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "serving_images" / "router")])}
    proc = subprocess.run(
        [sys.executable, "-c", _KILL_SCRIPT, str(data["events"]), "3"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    temps = list(data["events"].rglob(".*.rewrite"))
    assert len(temps) == 1, "the killed rewrite left its temporary file"
    mid = rows_of(data["events"])  # every visible file reads whole: old or new
    assert (
        sorted(
            p.relative_to(data["events"])
            for p in data["events"].rglob("*.parquet")
            if not p.name.startswith(".")
        )
        == files_before
    )
    assert sum(r["unit_id"] == SUBJECT for r in mid) == 30 - 2 * 5, "two files were rewritten before the kill"
    assert len(mid) == len(before) - 10

    rep = erase_subject(
        ErasureRequest(SUBJECT, "r", "me"), actor="t", events_root=str(data["events"]), extra_roots=""
    )
    assert rep["stale_temps_removed"] == 1 and rep["rows_removed"] == 20
    after = rows_of(data["events"])
    assert not list(data["events"].rglob(".*.rewrite"))
    ids = [r["request_id"] for r in after]
    assert len(ids) == len(set(ids)), "no record duplicated"
    assert sorted(ids) == sorted(r["request_id"] for r in before if r["unit_id"] != SUBJECT), "none lost"
