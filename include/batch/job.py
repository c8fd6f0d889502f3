"""The streaming ONNX batch job: Parquet in, Parquet (keys + predictions) and a manifest out.

For each input file ``<stem>.parquet`` the job writes ``<stem>.parquet`` (the key columns plus the
model's outputs) and then ``<stem>.manifest.json`` into the output folder. Both are written to a
hidden temporary name and renamed into place, the manifest last, so a reader that sees a manifest
sees a complete output, and a killed job leaves no ``*.parquet`` behind. A file whose manifest
already records the same model (version and sha256) and the same input fingerprint is skipped
unless ``force`` is set.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from include.batch import storage
from include.batch.columns import ColumnPlan, load_feature_names, plan_columns
from include.batch.errors import (
    BatchError,
    BatchInputError,
    BatchOutputError,
    FeatureMismatchError,
)
from include.batch.session import (
    LoadedModel,
    Providers,
    choose_providers,
    load_model,
    output_columns,
    run_model,
)

__all__ = [
    "MANIFEST_SCHEMA",
    "BatchConfig",
    "FileResult",
    "Providers",
    "choose_providers",
    "load_model",
    "run_batch",
    "score_file",
]

log = logging.getLogger(__name__)

MANIFEST_SCHEMA = "modelgate.batch.manifest/1"
"""Value of the ``schema`` field of every manifest this job writes."""

_READ_BUFFER = 8 << 20
_LOG_EVERY_S = 5.0


@dataclass(frozen=True)
class BatchConfig:
    """Arguments of one batch-job run (the command line, as data).

    Attributes:
        model_uri: ``models:/name@alias``, ``models:/name/N``, a ``.onnx`` file or an MLflow model dir.
        input: a Parquet file or a folder of ``*.parquet`` partitions (local path or URL).
        output: the output folder (local path or URL); created when missing.
        providers: ``auto`` (CUDA when present, else CPU), ``cpu`` or ``cuda``.
        batch_rows: rows per record batch read, scored and written.
        features: feature columns in the model's order (overrides the default rule).
        feature_spec: a feature spec JSON whose names are the feature columns.
        keys: columns carried through (default: every column that is not a feature).
        force: score again even when the manifest says the output is current.
        tracking_uri: MLflow server for ``models:/`` URIs (default from settings).
        progress: show a progress bar; ``None`` shows one when stderr is a terminal.
    """

    model_uri: str
    input: str
    output: str
    providers: Providers = "auto"
    batch_rows: int = 131_072
    features: tuple[str, ...] | None = None
    feature_spec: Path | None = None
    keys: tuple[str, ...] | None = None
    force: bool = False
    tracking_uri: str | None = None
    progress: bool | None = None


@dataclass(frozen=True)
class FileResult:
    """What the job did with one input file.

    Attributes:
        input: the input file.
        output: the output Parquet file.
        manifest: the manifest file.
        status: ``"scored"`` or ``"skipped"`` (the manifest was current).
        rows: rows scored (or recorded, when skipped).
        duration_s: seconds spent on this file.
        rows_per_s: rows per second (0 when skipped).
    """

    input: str
    output: str
    manifest: str
    status: Literal["scored", "skipped"]
    rows: int
    duration_s: float
    rows_per_s: float


def _feature_matrix(batch: pa.RecordBatch, plan: ColumnPlan, source: str) -> dict[str, np.ndarray]:
    feed: dict[str, np.ndarray] = {}
    if plan.mode == "matrix":
        inp = plan.inputs[0]
        x = np.empty((batch.num_rows, len(plan.features)), dtype=inp.dtype)
        for j, name in enumerate(plan.features):
            col = batch.column(name)
            if col.null_count:
                raise BatchInputError(f"{source}: feature column {name!r} has {col.null_count} null value(s)")
            x[:, j] = col.to_numpy(zero_copy_only=False)
        feed[inp.name] = x
        return feed
    for inp in plan.inputs:
        col = batch.column(inp.name)
        if col.null_count:
            raise BatchInputError(f"{source}: feature column {inp.name!r} has {col.null_count} null value(s)")
        arr = np.asarray(col.to_numpy(zero_copy_only=False), dtype=inp.dtype)
        feed[inp.name] = arr.reshape(-1, 1) if len(inp.shape) == 2 else arr
    return feed


class _Progress:
    """A tqdm bar on a terminal, else a structured log line every few seconds."""

    def __init__(self, total: int, label: str, bar: bool) -> None:
        self.total, self.label, self.done = total, label, 0
        self.t0 = self.last = time.monotonic()
        self.bar: Any = None
        if bar:
            from tqdm import tqdm

            self.bar = tqdm(
                total=total, unit="rows", unit_scale=True, desc=label, file=sys.stderr, leave=False
            )

    def update(self, n: int) -> None:
        self.done += n
        if self.bar is not None:
            self.bar.update(n)
            return
        now = time.monotonic()
        if now - self.last >= _LOG_EVERY_S:
            self.last = now
            rate = self.done / max(now - self.t0, 1e-9)
            log.info(
                "event=progress file=%s rows_done=%d rows_total=%d rows_per_s=%.0f",
                self.label,
                self.done,
                self.total,
                rate,
            )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _open_parquet(fs: pafs.FileSystem, path: str) -> pq.ParquetFile:
    try:
        return pq.ParquetFile(fs.open_input_file(path), buffer_size=_READ_BUFFER)
    except (OSError, pa.ArrowException) as e:
        raise BatchInputError(f"{path}: not a readable Parquet file ({e})") from e


def _manifest_is_current(doc: dict[str, Any] | None, model: LoadedModel, fp: Callable[[], str]) -> bool:
    if not doc or doc.get("schema") != MANIFEST_SCHEMA:
        return False
    m = doc.get("model", {})
    if m.get("sha256") != model.sha256 or m.get("version") != model.version:
        return False
    return bool(doc.get("input", {}).get("fingerprint") == fp())


def _stream(
    pf: pq.ParquetFile, plan: ColumnPlan, model: LoadedModel, src: str, batch_rows: int
) -> Iterator[pa.RecordBatch]:
    columns = list(dict.fromkeys([*plan.features, *plan.keys]))
    try:
        # One reader per row group: a single reader over the whole file keeps the buffers of the
        # row groups already read (peak memory grew with the file: 1.7 GB at 10M rows).
        batches = (
            b
            for rg in range(pf.num_row_groups)
            for b in pf.iter_batches(
                batch_size=batch_rows, row_groups=[rg], columns=columns, use_threads=True
            )
        )
        for batch in batches:
            results = run_model(model, _feature_matrix(batch, plan, src))
            cols = [(k, batch.column(k)) for k in plan.keys] + output_columns(model, results, batch.num_rows)
            yield pa.RecordBatch.from_arrays([c for _, c in cols], names=[k for k, _ in cols])
    except pa.ArrowException as e:
        raise BatchInputError(f"{src}: cannot decode the Parquet data ({e})") from e


def score_file(
    fs: pafs.FileSystem,
    src: str,
    out_dir: str,
    model: LoadedModel,
    config: BatchConfig,
    features: Sequence[str] | None,
) -> FileResult:
    """Score one Parquet file into ``out_dir`` (output, then manifest, each atomically).

    Args:
        fs: the file system of input and output.
        src: the input file.
        out_dir: the output folder (exists).
        model: the loaded model.
        config: the run's arguments.
        features: explicit feature names, or ``None`` for the default rule.

    Returns:
        What was done.

    Raises:
        BatchInputError: the file is unreadable, empty, or its columns do not fit the model.
        BatchOutputError: the output cannot be written.
    """
    t0 = time.monotonic()
    stem = storage.basename(src).removesuffix(".parquet")
    out, man = storage.join(out_dir, f"{stem}.parquet"), storage.join(out_dir, f"{stem}.manifest.json")
    storage.remove_stale_tmp(fs, out_dir, f"{stem}.parquet")
    storage.remove_stale_tmp(fs, out_dir, f"{stem}.manifest.json")
    with ThreadPoolExecutor(max_workers=1) as pool:
        fp_future: Future[str] = pool.submit(storage.fingerprint, fs, src)
        old = storage.read_json(fs, man)
        if (
            not config.force
            and storage.exists(fs, out)
            and _manifest_is_current(old, model, fp_future.result)
        ):
            rows = int(old["output"]["rows"]) if old else 0
            log.info("event=skip file=%s reason=manifest_current manifest=%s", src, man)
            return FileResult(src, out, man, "skipped", rows, time.monotonic() - t0, 0.0)
        pf = _open_parquet(fs, src)
        total = pf.metadata.num_rows
        if total == 0:
            raise BatchInputError(f"{src}: empty partition (0 rows)")
        plan = plan_columns(pf.schema_arrow, model.inputs, source=src, features=features, keys=config.keys)
        clash = sorted(set(plan.keys) & {o for o in model.outputs})
        if clash:
            raise FeatureMismatchError(f"{src}: key column(s) {clash} have the same name as model outputs")
        if old is not None:
            storage.delete_quietly(fs, man)
        rows = _write_output(fs, pf, plan, model, src, out, config, total)
        fingerprint = fp_future.result()
    duration = time.monotonic() - t0
    rate = rows / max(duration, 1e-9)
    doc = {
        "schema": MANIFEST_SCHEMA,
        "input": {"path": src, "fingerprint": fingerprint, "rows": total},
        "output": {"path": storage.basename(out), "rows": rows, "key_columns": list(plan.keys)},
        "model": {"uri": model.uri, "name": model.name, "version": model.version, "sha256": model.sha256},
        "features": list(plan.features),
        "providers": model.providers,
        "batch_rows": config.batch_rows,
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "duration_s": round(duration, 4),
        "rows_per_s": round(rate, 1),
    }
    storage.write_json_atomic(fs, man, doc)
    log.info(
        "event=scored file=%s rows=%d duration_s=%.3f rows_per_s=%.0f output=%s",
        src,
        rows,
        duration,
        rate,
        out,
    )
    return FileResult(src, out, man, "scored", rows, duration, rate)


def _write_output(
    fs: pafs.FileSystem,
    pf: pq.ParquetFile,
    plan: ColumnPlan,
    model: LoadedModel,
    src: str,
    out: str,
    config: BatchConfig,
    total: int,
) -> int:
    folder, name = out.rsplit("/", 1)
    tmp = storage.tmp_name(fs, folder, name)
    show_bar = sys.stderr.isatty() if config.progress is None else config.progress
    progress = _Progress(total, storage.basename(src), show_bar)
    writer: pq.ParquetWriter | None = None
    rows = 0
    try:
        for batch in _stream(pf, plan, model, src, config.batch_rows):
            if writer is None:
                writer = pq.ParquetWriter(tmp, batch.schema, filesystem=fs)
            writer.write_batch(batch)
            rows += batch.num_rows
            progress.update(batch.num_rows)
        if writer is None:
            raise BatchInputError(f"{src}: empty partition (no record batches)")
        writer.close()
        writer = None
        if rows != total:
            raise BatchInputError(f"{src}: read {rows} rows but the file's metadata says {total}")
        fs.move(tmp, out)
    except BaseException:
        if writer is not None:
            try:
                writer.close()
            except Exception:  # already failing; the temp file is removed next
                log.debug("closing the writer of %s failed", tmp, exc_info=True)
        storage.delete_quietly(fs, tmp)
        raise
    finally:
        progress.close()
    return rows


def run_batch(config: BatchConfig) -> list[FileResult]:
    """Score every input file of ``config`` with one model, file by file.

    Args:
        config: the run's arguments.

    Returns:
        One result per input file, in file order.

    Raises:
        BatchError: bad arguments, input or output (the message names the file and the problem).
        ModelgateError: the model could not be resolved or verified.
    """
    if config.batch_rows < 1:
        raise BatchError(f"--batch-rows must be at least 1, got {config.batch_rows}")
    if config.features is not None and config.feature_spec is not None:
        raise BatchError("give either --features or --feature-spec, not both")
    features = load_feature_names(config.feature_spec) if config.feature_spec else config.features
    in_fs, in_path = storage.filesystem(config.input)
    files = storage.list_input_files(in_fs, in_path, config.input)
    out_fs, out_dir = storage.filesystem(config.output)
    if type(out_fs) is not type(in_fs):
        raise BatchOutputError("input and output must be on the same kind of file system")
    if out_fs.get_file_info(out_dir).type == pafs.FileType.File:
        raise BatchOutputError(f"{config.output}: is a file; --output must be a folder")
    created = out_fs.get_file_info(out_dir).type == pafs.FileType.NotFound
    try:
        out_fs.create_dir(out_dir, recursive=True)
    except OSError as e:
        raise BatchOutputError(f"{config.output}: cannot create the output folder ({e})") from e
    try:
        model = load_model(config.model_uri, config.providers, config.tracking_uri)
        return [score_file(in_fs, f, out_dir, model, config, features) for f in files]
    except BaseException:
        if created and not out_fs.get_file_info(pafs.FileSelector(out_dir, allow_not_found=True)):
            out_fs.delete_dir(out_dir)
        raise
