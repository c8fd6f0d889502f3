"""Killing the job mid-write leaves no partial output; the next run cleans up and completes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from batch_support import write_partition
from support import REPO


def _start(model: Path, part: Path, out: Path) -> subprocess.Popen[bytes]:
    cmd = [
        sys.executable,
        "-m",
        "include.batch",
        "--model-uri",
        str(model),
        "--input",
        str(part),
        "--output",
        str(out),
    ]
    return subprocess.Popen([*cmd, "--batch-rows", "128", "--no-progress"], cwd=REPO, stderr=subprocess.PIPE)


def _wait_for_tmp(out: Path, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        tmps = list(out.glob(".part-0.parquet.tmp-*")) if out.exists() else []
        if tmps and tmps[0].stat().st_size > 0:
            return tmps[0]
        assert proc.poll() is None, "the job finished before it could be killed; make the input larger"
        time.sleep(0.005)
    raise TimeoutError("the job never started writing")


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_killing_the_job_mid_write_leaves_no_partial_output(
    tmp_path: Path, classifier: Path, sig: int
) -> None:
    part = write_partition(tmp_path / "in" / "part-0.parquet", 300_000, row_group_size=50_000)
    out = tmp_path / "out"
    proc = _start(classifier, part, out)
    try:
        tmp = _wait_for_tmp(out, proc)
        os.kill(proc.pid, sig)
        rc = proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert rc == -sig if sig == signal.SIGKILL else rc == 128 + sig
    assert not (out / "part-0.parquet").exists()
    assert not (out / "part-0.manifest.json").exists()
    assert list(out.glob("*.parquet")) == []
    if sig == signal.SIGTERM:
        assert not tmp.exists(), "SIGTERM runs the cleanup: the temporary file is gone"

    rerun = subprocess.run(
        [
            sys.executable,
            "-m",
            "include.batch",
            "--model-uri",
            str(classifier),
            "--input",
            str(part),
            "--output",
            str(out),
        ],
        cwd=REPO,
        capture_output=True,
        timeout=120,
    )
    assert rerun.returncode == 0, rerun.stderr.decode()[-2000:]
    assert sorted(p.name for p in out.iterdir()) == ["part-0.manifest.json", "part-0.parquet"]
    assert pq.ParquetFile(out / "part-0.parquet").metadata.num_rows == 300_000
