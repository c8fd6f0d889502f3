"""Parquet files of prediction events, partitioned by date and hour, written so that none is lost or doubled.

Used by the event writer process (``router.eventwriter``), and in-process by a sink that was never
started. Files land under ``<root>/date=YYYY-MM-DD/hour=HH/part-<pid>-<seq>-<rand>.parquet``; local
files are written to a temporary name and renamed into place.
"""

from __future__ import annotations

import logging
import os
import secrets
from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson

from modelgate_contracts.events import HOUR_US
from modelgate_contracts.events import event_schema as schema

log = logging.getLogger(__name__)

WRITE_SLICE = 2048
"""Records converted to Arrow and written as one Parquet row group in one step of a file write (each
about 1 ms), with a pause after each step."""


class ParquetBatchWriter:
    """Holds decoded records and writes them as Parquet files partitioned by date and hour.

    A flush writes one file per UTC hour in the batch. Each file counts as written once it is in
    place, and its records leave the batch: if a later file fails, only the records not yet in a file
    are kept for the next attempt (the newest ``max_buffer`` of them; older ones are dropped and
    counted). Used by the writer process, and in-process by a sink that was never started.

    Args:
        root: local directory or fsspec URL.
        max_buffer: records kept while writes fail.
        on_progress: called before each file is written (``pending`` then names it) and after each
            attempt (``pending`` is None again, the counts are updated); the writer process reports
            from it.
    """

    def __init__(
        self,
        root: str,
        max_buffer: int,
        on_progress: Callable[[], None] | None = None,
        pause: Callable[[], None] | None = None,
    ) -> None:
        self.root = root.rstrip("/")
        self.max_buffer = max_buffer
        self.on_progress = on_progress
        self.pause = pause
        self.rows: list[Sequence[Any]] = []
        self.written = 0
        self.dropped = 0
        self.failures = 0
        self.files = 0
        self.last_error: str | None = None
        self.acked = 0
        """Frames received whose every record is written or dropped (the writer process sets it)."""
        self.dup_skipped = 0
        """Resent records found already in a file that was reported written (not written again)."""
        self.pending: tuple[str, int] | None = None
        """The file being written now and its record count; None between files."""
        self._seq = 0

    def flush(self) -> int:
        """Write every held record, one file per UTC hour.

        Returns:
            Records written.
        """
        batch = self.rows
        if not batch:
            return 0
        self.rows = []
        groups: dict[int, list[Sequence[Any]]] = defaultdict(list)
        for r in batch:
            groups[r[0] // HOUR_US].append(r)
        hours = list(groups)
        done = 0
        for i, hour in enumerate(hours):
            recs = groups[hour]
            try:
                self._write_hour(hour, recs)
            except Exception as e:  # any sink failure: keep serving, keep or count the records
                self.pending = None
                self._fail(e, batch if i == 0 else self._unwritten(batch, hours[i:]))
                return done
            self.pending = None
            self.written += len(recs)
            self.files += 1
            done += len(recs)
            self._progress()
        return done

    @staticmethod
    def _unwritten(batch: list[Sequence[Any]], hours: list[int]) -> list[Sequence[Any]]:
        """The records of ``batch`` in ``hours``, in arrival order (the hours not yet in a file)."""
        left = set(hours)
        return [r for r in batch if r[0] // HOUR_US in left]

    def _fail(self, e: Exception, rest: list[Sequence[Any]]) -> None:
        self.failures += 1
        self.last_error = f"{type(e).__name__}: {e}"
        log.error("event sink failed to write %d records: %s", len(rest), self.last_error)
        keep = max(0, self.max_buffer - len(self.rows))
        if len(rest) > keep:
            self.dropped += len(rest) - keep
            rest = rest[len(rest) - keep :] if keep else []
        self.rows[:0] = rest
        self._progress()

    def _progress(self) -> None:
        if self.on_progress is not None:
            self.on_progress()

    def _write_hour(self, hour: int, recs: list[Sequence[Any]]) -> None:
        import pyarrow as pa

        sch = schema()
        pause = self.pause
        batches = []
        for i in range(0, len(recs), WRITE_SLICE):  # about 1 ms a step, then a pause
            part = recs[i : i + WRITE_SLICE]
            cols = list(zip(*part, strict=True))
            # records of an older producer lack the newest (nullable, trailing) fields: null there
            cols += [(None,) * len(part)] * (len(sch) - len(cols))
            arrays = [pa.array(c, type=f.type) for c, f in zip(cols, sch, strict=True)]
            batches.append(pa.RecordBatch.from_arrays(arrays, schema=sch))
            if pause is not None:
                pause()
        d = datetime.fromtimestamp(hour * 3600, tz=UTC)
        self._seq += 1
        partition = f"date={d:%Y-%m-%d}/hour={d:%H}"
        name = f"part-{os.getpid()}-{self._seq:06d}-{secrets.token_hex(4)}.parquet"
        self.pending = (self._path(partition, name), len(recs))
        self._progress()
        self._write_table(batches, partition, name)

    def _is_url(self) -> bool:
        return "://" in self.root and not self.root.startswith("file://")

    def _path(self, partition: str, name: str) -> str:
        """The final path of a file: a local path, or the fsspec path under the URL's filesystem."""
        if self._is_url():
            import fsspec

            _, base = fsspec.core.url_to_fs(self.root)
            return f"{base}/{partition}/{name}"
        return os.path.join(self.root.removeprefix("file://"), partition, name)

    def exists(self, path: str) -> bool:
        """Whether a file named by ``pending`` is in place.

        Args:
            path: the first element of a ``pending`` pair.

        Returns:
            True if the file exists; False if it does not or the store cannot be asked.
        """
        if not self._is_url():
            return os.path.exists(path)
        try:
            import fsspec

            fs, _ = fsspec.core.url_to_fs(self.root)
            return bool(fs.exists(path))
        except Exception as e:  # the store is unreachable: the file is not confirmed
            log.warning("cannot check whether %s exists: %s", path, e)
            return False

    def _write_table(self, batches: list[Any], partition: str, name: str) -> None:
        if self._is_url():
            import fsspec

            fs, base = fsspec.core.url_to_fs(self.root)
            fs.makedirs(f"{base}/{partition}", exist_ok=True)
            with fs.open(f"{base}/{partition}/{name}", "wb") as f:
                self._write_parquet(batches, f)
            return
        directory = os.path.join(self.root.removeprefix("file://"), partition)
        os.makedirs(directory, exist_ok=True)
        tmp = os.path.join(directory, f".{name}.tmp")
        self._write_parquet(batches, tmp)
        os.replace(tmp, os.path.join(directory, name))

    def _write_parquet(self, batches: list[Any], where: Any) -> None:
        """Write ``batches`` as one Parquet file, one row group each, pausing between them."""
        import pyarrow.parquet as pq

        pause = self.pause
        with pq.ParquetWriter(where, schema()) as w:
            for b in batches:
                w.write_batch(b)
                if pause is not None:
                    pause()

    def report(self) -> bytes:
        """Return the counts as one JSON line (what the writer process tells the serving process)."""
        return (
            orjson.dumps(
                {
                    "written": self.written,
                    "dropped": self.dropped,
                    "failures": self.failures,
                    "files": self.files,
                    "error": self.last_error,
                    "pending": self.pending,
                    "acked": self.acked,
                    "dup_skipped": self.dup_skipped,
                }
            )
            + b"\n"
        )
