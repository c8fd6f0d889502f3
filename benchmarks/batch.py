"""Batch job benchmark: end-to-end rows/s vs a minimal hand-written pipeline, and peak memory.

Run: ``.venv/bin/python benchmarks/batch.py [--providers cpu|cuda] [--rows 1000000] [--big-rows 10000000]``

Inputs (30 float32 features f00..f29 + a key column) are generated once under ``.local/bench/``.
Prints, on the same 1M-row file: the job's rows/s (``python -m include.batch`` in a subprocess,
end to end, interpreter start included), the rows/s of a minimal read -> session.run -> write
loop, their ratio (bar: >= 0.8); then the job's peak RSS on 1M and 10M rows (bar: <= 1.5 GB, flat).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / ".local" / "bench"
N_FEATURES = 30


def make_model(path: Path) -> Path:
    """A 30-feature logistic regression with the demo model's signature (label + probabilities)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    if path.exists():
        return path
    w = np.random.default_rng(0).normal(size=(N_FEATURES, 1)).astype(np.float32)
    nodes = [
        helper.make_node("MatMul", ["input", "W"], ["z0"]),
        helper.make_node("Add", ["z0", "B"], ["z"]),
        helper.make_node("Sigmoid", ["z"], ["p1"]),
        helper.make_node("Sub", ["one", "p1"], ["p0"]),
        helper.make_node("Concat", ["p0", "p1"], ["probabilities"], axis=1),
        helper.make_node("ArgMax", ["probabilities"], ["label"], axis=1, keepdims=0),
    ]
    graph = helper.make_graph(
        nodes,
        "bench_logreg",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [None, N_FEATURES])],
        [
            helper.make_tensor_value_info("label", TensorProto.INT64, [None]),
            helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, 2]),
        ],
        initializer=[
            numpy_helper.from_array(w, "W"),
            numpy_helper.from_array(np.array([0.1], np.float32), "B"),
            numpy_helper.from_array(np.array([1.0], np.float32), "one"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def make_input(path: Path, rows: int, chunk: int = 1_000_000) -> Path:
    """Write ``rows`` rows (key ``id`` int64 + f00..f29 float32) in 1M-row row groups, streaming."""
    if path.exists() and pq.ParquetFile(path).metadata.num_rows == rows:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    schema = pa.schema([("id", pa.int64())] + [(f"f{j:02d}", pa.float32()) for j in range(N_FEATURES)])
    tmp = path.with_suffix(".tmp")
    with pq.ParquetWriter(tmp, schema) as w:
        for start in range(0, rows, chunk):
            n = min(chunk, rows - start)
            x = rng.normal(size=(n, N_FEATURES)).astype(np.float32)
            cols = [pa.array(np.arange(start, start + n, dtype=np.int64))] + [
                pa.array(x[:, j]) for j in range(N_FEATURES)
            ]
            w.write_table(pa.Table.from_arrays(cols, schema=schema), row_group_size=chunk)
    os.replace(tmp, path)
    return path


def run_job(model: Path, inp: Path, out: Path, providers: str) -> tuple[float, int]:
    """Run the job in a fresh subprocess; return (wall seconds, peak RSS in bytes of that child)."""
    shutil.rmtree(out, ignore_errors=True)
    cmd = [sys.executable, "-c", "import resource,sys,runpy;sys.argv=['batch',*sys.argv[1:]];"
           "rc=0\ntry:\n runpy.run_module('include.batch',run_name='__main__')\nexcept SystemExit as e:\n rc=e.code or 0\n"
           "print('MAXRSS_KB',resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,file=sys.stderr);sys.exit(rc)",
           "--model-uri", str(model), "--input", str(inp), "--output", str(out),
           "--providers", providers, "--keys", "id", "--no-progress"]  # fmt: skip
    t0 = time.perf_counter()
    res = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    if res.returncode != 0:
        raise SystemExit(res.stderr[-3000:])
    kb = next(int(ln.split()[1]) for ln in res.stderr.splitlines() if ln.startswith("MAXRSS_KB"))
    return wall, kb * 1024


def job_in_process(model: Path, inp: Path, out: Path, providers: str) -> float:
    """Call the job's ``run_batch`` in this process (model load, fingerprint, manifest included)."""
    from include.batch.job import BatchConfig, run_batch

    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    run_batch(BatchConfig(str(model), str(inp), str(out), providers=providers, keys=("id",), progress=False))  # type: ignore[arg-type]
    return time.perf_counter() - t0


def minimal_pipeline(model: Path, inp: Path, out: Path, providers: str, batch_rows: int = 131_072) -> float:
    """Hand-written read -> session.run -> write, no checks, no manifest; return seconds (session load included)."""
    import onnxruntime as ort

    prov = (
        ["CUDAExecutionProvider", "CPUExecutionProvider"] if providers == "cuda" else ["CPUExecutionProvider"]
    )
    t0 = time.perf_counter()
    sess = ort.InferenceSession(str(model), providers=prov)
    pf = pq.ParquetFile(inp)
    feats = [f"f{j:02d}" for j in range(N_FEATURES)]
    writer = None
    for b in pf.iter_batches(batch_size=batch_rows):
        x = np.empty((b.num_rows, N_FEATURES), np.float32)
        for j, f in enumerate(feats):
            x[:, j] = b.column(f).to_numpy()
        label, proba = sess.run(None, {"input": x})
        t = pa.table(
            {
                "id": b.column("id"),
                "label": label,
                "probabilities_0": proba[:, 0],
                "probabilities_1": proba[:, 1],
            }
        )
        writer = writer or pq.ParquetWriter(out, t.schema)
        writer.write_table(t)
    assert writer is not None
    writer.close()
    return time.perf_counter() - t0


def main() -> None:
    """Generate inputs, time both pipelines, measure peak RSS, print the figures and ratios."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--providers", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--big-rows", type=int, default=10_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    model = make_model(BENCH / "logreg30.onnx")
    small = make_input(BENCH / f"in-{a.rows}.parquet", a.rows)
    big = make_input(BENCH / f"in-{a.big_rows}.parquet", a.big_rows)
    out = BENCH / "out"
    out.mkdir(parents=True, exist_ok=True)
    minimal_pipeline(model, small, out / "warm.parquet", a.providers)  # warm the page cache
    import logging

    logging.disable(logging.INFO)
    sub_s, rss_small = min(run_job(model, small, out / "job", a.providers) for _ in range(a.repeat))
    job_s = min(job_in_process(model, small, out / "job-inproc", a.providers) for _ in range(a.repeat))
    hand_s = min(minimal_pipeline(model, small, out / "hand.parquet", a.providers) for _ in range(a.repeat))
    job_rate, hand_rate, sub_rate = a.rows / job_s, a.rows / hand_s, a.rows / sub_s
    print(
        f"providers: {a.providers}   input: {a.rows:,} rows x {N_FEATURES} float32 + key (best of {a.repeat})"
    )
    print(f"batch job end to end (run_batch):     {job_rate:12,.0f} rows/s  ({job_s:.2f} s)")
    print(f"minimal read->session.run->write:     {hand_rate:12,.0f} rows/s  ({hand_s:.2f} s)")
    print(f"ratio job / minimal:                  {job_rate / hand_rate:12.2f}   (bar >= 0.8)")
    print(
        f"job as a subprocess (python start):   {sub_rate:12,.0f} rows/s  ({sub_s:.2f} s), ratio {sub_rate / hand_rate:.2f}"
    )
    big_s, rss_big = run_job(model, big, out / "job-big", a.providers)
    print(f"peak RSS of the job, {a.rows:>11,} rows: {rss_small / 2**30:8.2f} GiB")
    print(f"peak RSS of the job, {a.big_rows:>11,} rows: {rss_big / 2**30:8.2f} GiB  (bar <= 1.5 GB, flat)  "
          f"[{a.big_rows / big_s:,.0f} rows/s]")  # fmt: skip
    print(f"RSS ratio big / small:                {rss_big / rss_small:12.2f}")


if __name__ == "__main__":
    main()
