"""Prediction events: appended to memory on the request path, written to Parquet by a writer process.

The request path appends one tuple to a list. A sender thread takes what accumulated every
``SEND_TICK`` seconds, encodes it with orjson (one C call, a fraction of a millisecond per few
thousand records) and writes it to the stdin of a writer process (``python -m router.eventwriter``),
which turns records into Arrow columns and Parquet files. The conversion from Python objects to
Arrow, about 2 µs a record, used to run on a thread of the serving process and took the GIL from
the event loop for tens of milliseconds at every flush; now it runs on another interpreter.

Files land under ``<root>/date=YYYY-MM-DD/hour=HH/part-<pid>-<seq>-<rand>.parquet``; the root is a
local directory or any fsspec URL. The schema is documented in ``docs/events.md``.

Nothing is lost silently: the writer reports its counts before and after each file, naming the file
it is about to write, and after each flush acknowledges the frames it has fully accounted for; records
it could not keep while the sink fails are counted as dropped; records beyond ``max_buffer`` in the
serving process's list are refused and counted as dropped. If the writer process dies, a new one starts
and gets the frames the dead one never acknowledged, skipping records already in its files
(``router.writerproc``), so nothing is lost below the cap and nothing is written twice. A record is in at
most one file: a failed write retries only the hours not yet written. A sink used without ``start()`` (tests, tools) writes in-process on ``flush()``/``close()``.
"""

from __future__ import annotations

import logging
import os
import struct
import subprocess
import sys
import threading
import time
from typing import IO

import orjson

from modelgate_contracts.events import FIELDS, HOUR_US, Record
from modelgate_contracts.events import event_schema as schema
from router.parquetsink import WRITE_SLICE, ParquetBatchWriter
from router.writerproc import WriterChild

_Child = WriterChild  # the name tests and tools used

__all__ = [
    "FIELDS",
    "HOUR_US",
    "WRITE_SLICE",
    "EventSink",
    "ParquetBatchWriter",
    "Record",
    "now_us",
    "schema",
]

log = logging.getLogger(__name__)

SEND_TICK = 0.1
"""Seconds between hand-offs from the serving process to the writer process."""

SEND_CHUNK = 512
"""Records encoded per frame: bounds how long one orjson call holds the GIL here (about 0.1 ms) and
how long the writer process decodes before it pauses (about 1 ms)."""

WAKE_ROWS = 4096
"""The sender thread wakes early when this many records wait (or ``flush_rows``, if smaller)."""

WRITER_NICE = 10
"""Default nice value of the writer process (``ROUTER_EVENTS_WRITER_NICE``)."""

FRAME = struct.Struct("<II")
"""Frame header on the writer's stdin: payload bytes, record count; the payload is a JSON array."""


class EventSink:
    """Buffers event tuples and has them written to Parquet off the request path.

    Args:
        root: local directory or fsspec URL.
        flush_rows: a Parquet file is written when this many records are waiting.
        flush_seconds: and at least this often.
        max_buffer: records kept in memory while writes fail; beyond it records are dropped and counted.
            The list in this process never holds more: ``append`` refuses (and counts) records while
            it is full, for example while the sender thread is blocked on a full pipe.
    """

    def __init__(
        self,
        root: str,
        flush_rows: int,
        flush_seconds: float,
        max_buffer: int,
        writer_nice: int = WRITER_NICE,
        writer_idle: bool = False,
    ) -> None:
        self.root = root.rstrip("/")
        self.writer_nice = writer_nice
        self.writer_idle = writer_idle
        self.flush_rows = flush_rows
        self.flush_seconds = flush_seconds
        self.max_buffer = max_buffer
        self._buf: list[Record] = []
        self._wake_at = min(flush_rows, WAKE_ROWS)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._send_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._child: WriterChild | None = None
        # frames and files a dead writer left for the next one; records lost beyond what was resent
        self._resend: tuple[list[tuple[bytes, int]], list[list[object]]] | None = None
        self._debt = 0
        self._local = ParquetBatchWriter(root, max_buffer)
        # counts of writer processes that ended, and of records lost on this side
        self._base: tuple[int, int, int, int] = (0, 0, 0, 0)
        # records refused by ``append`` because the list was full; the lock is only taken then
        self._refused = 0
        self._refused_lock = threading.Lock()
        self._last_error: str | None = None

    # ------------------------------------------------------------------ counters

    @property
    def written(self) -> int:
        """Records written to Parquet."""
        c = self._child
        return self._base[0] + self._local.written + (c.counts[0] if c else 0)

    @property
    def dropped(self) -> int:
        """Records dropped (sink kept failing beyond ``max_buffer``, or a writer process died)."""
        c = self._child
        lost = max(0, self._debt + (c.dup_skipped if c else 0))
        return self._base[1] + self._refused + self._local.dropped + (c.counts[1] if c else 0) + lost

    @property
    def failures(self) -> int:
        """Failed write attempts."""
        c = self._child
        return self._base[2] + self._local.failures + (c.counts[2] if c else 0)

    @property
    def files(self) -> int:
        """Parquet files written."""
        c = self._child
        return self._base[3] + self._local.files + (c.counts[3] if c else 0)

    @property
    def last_error(self) -> str | None:
        """The latest write error."""
        c = self._child
        return (c.counts[4] if c else None) or self._local.last_error or self._last_error

    @property
    def buffered(self) -> int:
        """Records not yet written nor dropped (in this process, in the pipe, in the writer)."""
        c = self._child
        held = c.sent - c.counts[0] - c.counts[1] - c.dup_skipped if c else 0
        return len(self._buf) + len(self._local.rows) + held

    # ------------------------------------------------------------------ request path

    def append(self, rec: Record) -> None:
        """Append one record (called on the request path; O(1), no lock while the list has room).

        While the list holds ``max_buffer`` records the record is dropped and counted instead. The
        newest record is the one dropped: removing the oldest here would race with the sender thread,
        which takes records from the front.

        Args:
            rec: the event tuple, fields in ``FIELDS`` order.
        """
        buf = self._buf
        n = len(buf)
        if n >= self.max_buffer:
            with self._refused_lock:  # the event loop and the shadow thread both append
                self._refused += 1
            return
        buf.append(rec)  # list.append is atomic under the GIL: safe against the sender's slice-and-delete
        if n + 1 == self._wake_at:
            self._wake.set()

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Start the writer process and the sender thread."""
        if self._thread is not None:
            return
        self._spawn()
        self._thread = threading.Thread(target=self._run, name="event-sender", daemon=True)
        self._thread.start()

    def close(self, timeout: float = 30.0) -> None:
        """Send everything, let the writer write it and exit, and collect its final counts.

        Args:
            timeout: seconds to wait for the sender thread and for the writer process.
        """
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        child = self._child
        if child is None:
            self.flush()
            return
        with self._send_lock:
            self._send_all(child)
            stdin = child.proc.stdin
            if stdin is not None:
                try:
                    stdin.close()
                except OSError:
                    pass
        try:
            child.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            log.error("event writer did not finish within %.0f s; killing it", timeout)
            child.proc.kill()
            child.proc.wait(5)
        if child.reader is not None:
            child.reader.join(5)
        self._retire(child)

    def flush(self) -> int:
        """Write what is buffered now, in this process (a sink that was never started).

        Returns:
            Records written.
        """
        if self._child is not None:
            with self._send_lock:
                self._send_all(self._child)
            return 0
        buf = self._buf
        n = len(buf)
        self._local.rows.extend(buf[:n])
        del buf[:n]
        return self._local.flush()

    # ------------------------------------------------------------------ writer process

    def _spawn(self) -> None:
        resend = self._resend
        self._resend = None
        env = dict(os.environ)
        pkg_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        env["PYTHONPATH"] = os.pathsep.join([pkg_root, *filter(None, [env.get("PYTHONPATH")])])
        cfg = orjson.dumps(
            {
                "root": self.root,
                "flush_rows": self.flush_rows,
                "flush_seconds": self.flush_seconds,
                "max_buffer": self.max_buffer,
                "nice": self.writer_nice,
                "idle": self.writer_idle,
                "resend_records": sum(n for _, n in resend[0]) if resend else 0,
                "skip_files": resend[1] if resend else [],
            }
        ).decode()
        proc = subprocess.Popen(
            [sys.executable, "-m", "router.eventwriter", cfg],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            close_fds=True,
        )
        child = WriterChild(proc, self.max_buffer)
        child.reader = threading.Thread(
            target=self._read_reports, args=(child,), name="event-writer-reports", daemon=True
        )
        child.reader.start()
        self._child = child
        log.info("event writer process %d started", proc.pid)
        if resend:
            with self._send_lock:
                ok = True
                for payload, n in resend[0]:
                    if ok:
                        ok = self._send_frame(child, payload, n)
                    else:  # this writer died too: keep the rest for the next one
                        child.sent += n
                        child.keep(payload, n)

    def _read_reports(self, child: WriterChild) -> None:
        out: IO[bytes] | None = child.proc.stdout
        if out is None:
            return
        for line in out:
            child.take(line)

    def _retire(self, child: WriterChild) -> None:
        """Fold an ended writer's counts into the totals; what it never accounted for is resent to the
        next writer (``router.writerproc``), or, when that is not possible, counted as dropped."""
        w, d, f, n, err = child.counts
        b = self._base
        self._base = (b[0], b[1] + max(0, self._debt + child.dup_skipped), b[2], b[3])
        self._debt = 0
        lost = child.sent - w - d - child.dup_skipped
        plan = child.resend_plan() if lost > 0 and not self._stop.is_set() else None
        if plan is not None:
            resent = sum(k for _, k in plan[0])
            # resent records already counted as written are found again by the next writer (dup_skipped)
            self._debt = lost - resent
            self._resend = plan
            log.warning(
                "event writer exited with code %s before accounting for %d records; resending %d records "
                "to the next writer, which skips those already in files %s",
                child.proc.returncode,
                lost,
                resent,
                [p for p, _ in plan[1]],
            )
            lost = 0
            f += 1
        if lost > 0 and child.pending is not None:
            path, rows = child.pending
            if self._local.exists(path):  # the file is in place; only the report after it was lost
                rows = min(rows, lost)
                log.warning(
                    "event writer ended after writing %s (%d records) but before reporting it", path, rows
                )
                w, n, lost = w + rows, n + 1, lost - rows
        if lost > 0:
            f += 1
            d += lost
            self._last_error = (
                f"event writer process exited with code {child.proc.returncode} "
                f"before accounting for {lost} records"
            )
            log.error("%s; counted as dropped", self._last_error)
        elif err:
            self._last_error = err
        b = self._base
        self._base = (b[0] + w, b[1] + d, b[2] + f, b[3] + n)
        if self._child is child:
            self._child = None

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(SEND_TICK)
            self._wake.clear()
            child = self._child
            if child is None or child.proc.poll() is not None:
                if child is not None:
                    if child.reader is not None:
                        child.reader.join(5)
                    self._retire(child)
                try:
                    self._spawn()
                except OSError as e:
                    log.error("cannot start the event writer: %s", e)
                    self._cap()
                    continue
                child = self._child
            self._cap()
            if child is not None:
                with self._send_lock:
                    self._send_all(child)

    def _cap(self) -> None:
        """Drop (and count) the oldest records beyond ``max_buffer``.

        ``append`` keeps the list at ``max_buffer``; two threads appending at once can pass it by one.
        """
        buf = self._buf
        extra = len(buf) - self.max_buffer
        if extra > 0:
            del buf[:extra]
            b = self._base
            self._base = (b[0], b[1] + extra, b[2], b[3])

    def _send_all(self, child: WriterChild) -> None:
        buf = self._buf
        stdin = child.proc.stdin
        while buf and stdin is not None and not stdin.closed:
            n = min(len(buf), SEND_CHUNK)
            chunk = buf[:n]
            del buf[:n]  # one C call: appends made meanwhile stay at the end
            if not self._send_frame(child, orjson.dumps(chunk), n):
                return

    def _send_frame(self, child: WriterChild, payload: bytes, n: int) -> bool:
        """Write one frame to the writer and keep it until acknowledged; False when the pipe failed."""
        stdin = child.proc.stdin
        child.sent += n
        child.keep(payload, n)
        if stdin is None or stdin.closed:
            return False
        try:
            stdin.write(FRAME.pack(len(payload), n))
            stdin.write(payload)
            stdin.flush()
        except (BrokenPipeError, OSError, ValueError) as e:
            log.error("event writer pipe failed (%s); it will be restarted", e)
            return False
        return True


def now_us() -> int:
    """Return the current time in microseconds since the epoch."""
    return int(time.time() * 1_000_000)
