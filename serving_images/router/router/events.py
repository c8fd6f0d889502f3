"""Prediction events: appended to memory on the request path, written to Parquet by a thread.

Files land under ``<root>/date=YYYY-MM-DD/hour=HH/part-<pid>-<seq>-<rand>.parquet``; the root is a
local directory or any fsspec URL. The schema is documented in ``docs/events.md``.
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
import time
from collections import defaultdict, deque
from datetime import UTC, datetime
from typing import Any

log = logging.getLogger(__name__)

# Field order of the tuples appended by the data plane.
FIELDS = (
    "ts",
    "request_id",
    "model",
    "variant",
    "model_version",
    "unit_id",
    "consent",
    "latency_ms",
    "status",
    "rows",
    "score",
    "shadow",
    "error",
)

Record = tuple[
    int, str, str, str, str, "str | None", bool, float, int, int, "float | None", bool, "str | None"
]


def schema() -> Any:
    """Return the pyarrow schema of an event file.

    Returns:
        The ``pyarrow.Schema``.
    """
    import pyarrow as pa

    return pa.schema(
        [
            pa.field("ts", pa.timestamp("us", tz="UTC"), nullable=False),
            pa.field("request_id", pa.string(), nullable=False),
            pa.field("model", pa.string(), nullable=False),
            pa.field("variant", pa.string(), nullable=False),
            pa.field("model_version", pa.string(), nullable=False),
            pa.field("unit_id", pa.string()),
            pa.field("consent", pa.bool_(), nullable=False),
            pa.field("latency_ms", pa.float64(), nullable=False),
            pa.field("status", pa.int32(), nullable=False),
            pa.field("rows", pa.int32(), nullable=False),
            pa.field("score", pa.float64()),
            pa.field("shadow", pa.bool_(), nullable=False),
            pa.field("error", pa.string()),
        ]
    )


class EventSink:
    """Buffers event tuples and writes them to Parquet off the request path.

    Args:
        root: local directory or fsspec URL.
        flush_rows: flush when the buffer holds this many records.
        flush_seconds: flush at least this often.
        max_buffer: records kept while writes fail; beyond it records are dropped and counted.
    """

    def __init__(self, root: str, flush_rows: int, flush_seconds: float, max_buffer: int) -> None:
        self.root = root.rstrip("/")
        self.flush_rows = flush_rows
        self.flush_seconds = flush_seconds
        self.max_buffer = max_buffer
        self._buf: deque[Record] = deque()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._seq = 0
        self.written = 0
        self.dropped = 0
        self.failures = 0
        self.files = 0
        self.last_error: str | None = None

    @property
    def buffered(self) -> int:
        """Records waiting in memory."""
        return len(self._buf)

    def append(self, rec: Record) -> None:
        """Append one record (called on the request path; O(1)).

        Args:
            rec: the event tuple, fields in ``FIELDS`` order.
        """
        buf = self._buf
        buf.append(rec)  # deque.append is atomic: safe against the writer thread's popleft
        if len(buf) >= self.flush_rows:
            self._wake.set()

    def start(self) -> None:
        """Start the background writer thread."""
        import pyarrow as pa
        import pyarrow.parquet

        pa.array([0], type=pa.int64())  # the first conversion imports pandas: pay it before traffic
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="event-sink", daemon=True)
            self._thread.start()

    def close(self, timeout: float = 30.0) -> None:
        """Stop the writer and flush everything still buffered.

        Args:
            timeout: seconds to wait for the writer thread.
        """
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self.flush()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.flush_seconds)
            self._wake.clear()
            self.flush()

    def flush(self) -> int:
        """Write what is buffered now.

        Returns:
            Records written.
        """
        with self._lock:
            buf = self._buf
            batch = [buf.popleft() for _ in range(len(buf))]
            if not batch:
                return 0
            try:
                self._write(batch)
            except Exception as e:  # any sink failure: keep serving, keep or count the records
                self.failures += 1
                self.last_error = f"{type(e).__name__}: {e}"
                log.error("event sink failed to write %d records: %s", len(batch), self.last_error)
                keep = max(0, self.max_buffer - len(buf))
                if len(batch) > keep:
                    self.dropped += len(batch) - keep
                    batch = batch[len(batch) - keep :] if keep else []
                buf.extendleft(reversed(batch))
                return 0
            self.written += len(batch)
            return len(batch)

    def _write(self, batch: list[Record]) -> None:
        import pyarrow as pa

        groups: dict[int, list[Record]] = defaultdict(list)
        for r in batch:
            groups[r[0] // 3_600_000_000].append(r)
        sch = schema()
        for hour, recs in groups.items():
            cols = list(zip(*recs, strict=True))
            arrays = [pa.array(c, type=f.type) for c, f in zip(cols, sch, strict=True)]
            table = pa.Table.from_arrays(arrays, schema=sch)
            d = datetime.fromtimestamp(hour * 3600, tz=UTC)
            self._seq += 1
            name = f"part-{os.getpid()}-{self._seq:06d}-{secrets.token_hex(4)}.parquet"
            self._write_table(table, f"date={d:%Y-%m-%d}/hour={d:%H}", name)
            self.files += 1

    def _write_table(self, table: Any, partition: str, name: str) -> None:
        import pyarrow.parquet as pq

        if "://" in self.root and not self.root.startswith("file://"):
            import fsspec

            fs, base = fsspec.core.url_to_fs(self.root)
            fs.makedirs(f"{base}/{partition}", exist_ok=True)
            with fs.open(f"{base}/{partition}/{name}", "wb") as f:
                pq.write_table(table, f)
            return
        directory = os.path.join(self.root.removeprefix("file://"), partition)
        os.makedirs(directory, exist_ok=True)
        tmp = os.path.join(directory, f".{name}.tmp")
        pq.write_table(table, tmp)
        os.replace(tmp, os.path.join(directory, name))


def now_us() -> int:
    """Return the current time in microseconds since the epoch."""
    return int(time.time() * 1_000_000)
