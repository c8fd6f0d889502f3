"""The event writer process: ``python -m router.eventwriter CONFIG_JSON`` (started by ``EventSink``).

Reads frames from stdin (``FRAME`` header, then a JSON array of records), writes Parquet files when
``flush_rows`` records are held or ``flush_seconds`` have passed, and prints its counts as one JSON
line on stdout before and after each file (the line before names the file in ``pending``). It ignores
SIGINT and SIGTERM (they reach the whole process group, and the serving process still has records to
hand over while it drains) and exits when stdin closes, after writing what it holds (what it cannot
write then is counted as dropped). If the serving process is gone (its end of stdout is closed), it
stops reporting, writes what it received and exits 0.
"""

from __future__ import annotations

import logging
import os
import select
import signal
import sys
import time
from typing import IO, Any

import orjson

from router.events import FRAME, WRITER_NICE
from router.parquetsink import ParquetBatchWriter

log = logging.getLogger(__name__)


def _read_exact(fd: int, n: int) -> bytes | None:
    """Read exactly ``n`` bytes, or None at end of file."""
    parts = []
    while n:
        chunk = os.read(fd, min(n, 1 << 20))
        if not chunk:
            return None
        parts.append(chunk)
        n -= len(chunk)
    return b"".join(parts)


def _read_frame(fd: int) -> bytes | None:
    """Read one frame's payload, or None at end of file."""
    head = _read_exact(fd, FRAME.size)
    if head is None:
        return None
    size, _count = FRAME.unpack(head)
    return _read_exact(fd, size)


def serve(cfg: dict[str, object], fd_in: int, out: IO[bytes]) -> int:
    """Run the writer loop until ``fd_in`` ends.

    Args:
        cfg: ``root``, ``flush_rows``, ``flush_seconds``, ``max_buffer``.
        fd_in: the frames' file descriptor.
        out: a binary stream for the reports.

    Returns:
        The exit code.
    """
    parent_gone = False

    def report() -> None:
        nonlocal parent_gone
        if parent_gone:
            return
        try:
            out.write(writer.report())
            out.flush()
        except OSError as e:  # BrokenPipeError: the serving process died (SIGKILL); nobody reads the counts
            parent_gone = True
            log.warning(
                "cannot report to the serving process (%s); writing what was received, then exiting", e
            )
            _silence(out)

    writer = ParquetBatchWriter(
        str(cfg["root"]),
        int(cfg["max_buffer"]),  # type: ignore[call-overload]
        report,
        pause=_pause,
    )
    flush_rows = int(cfg["flush_rows"])  # type: ignore[call-overload]
    flush_seconds = float(cfg["flush_seconds"])  # type: ignore[arg-type]
    import pyarrow as pa
    import pyarrow.parquet  # imported before the first batch arrives

    pa.array([0], type=pa.int64())

    skip: list[list[object]] = cfg.get("skip_files") or []  # type: ignore[assignment]
    resend = _Resend(int(cfg.get("resend_records", 0)), skip)  # type: ignore[call-overload]
    frames = 0
    last = time.monotonic()
    open_ = True
    while open_:
        timeout = max(0.0, last + flush_seconds - time.monotonic())
        ready, _, _ = select.select([fd_in], [], [], timeout)
        if ready:
            payload = _read_frame(fd_in)
            if payload is None:
                open_ = False
            else:
                frames += 1
                recs, resent_all = resend.take(writer, orjson.loads(payload))
                if resent_all:  # the dead writer's records are old already: write them now
                    last = -flush_seconds
                writer.rows.extend(recs)
                _pause()
        now = time.monotonic()
        if len(writer.rows) >= flush_rows or now - last >= flush_seconds or not open_:
            if writer.rows:
                writer.flush()  # reports before and after each file
            last = now
        if not writer.rows and writer.acked != frames:  # everything received is in a file (or dropped)
            writer.acked = frames
            report()
    if writer.rows:  # the last attempt failed: nobody will retry these
        log.error(
            "event writer exiting with %d records it could not write; counted as dropped", len(writer.rows)
        )
        writer.dropped += len(writer.rows)
        writer.rows = []
    report()
    return 0


Key = tuple[int, str, bool]


def _file_keys(skip: list[list[object]]) -> tuple[set[Key], set[Key]]:
    """Read the (ts, request_id, shadow) keys of the files a dead writer may have written.

    Args:
        skip: ``[path, counted]`` pairs: files it reported written (``counted``), and the file it was
            writing when it died (not counted; it may or may not be in place).

    Returns:
        The keys of counted files, and of the uncounted file when it is in place.
    """
    counted: set[Key] = set()
    uncounted: set[Key] = set()
    if not skip:
        return counted, uncounted
    import pyarrow.parquet as pq

    for path, was_counted in skip:
        try:
            t = pq.read_table(str(path), columns=["ts", "request_id", "shadow"])
        except (OSError, ValueError) as e:  # not in place (killed before the rename): nothing to skip
            log.info("not skipping records of %s: %s", path, e)
            continue
        ts = t.column("ts").cast("int64").to_pylist()
        keys = zip(ts, t.column("request_id").to_pylist(), t.column("shadow").to_pylist(), strict=True)
        (counted if was_counted else uncounted).update(keys)
    return counted, uncounted


class _Resend:
    """The first ``left`` records a new writer receives were resent after its predecessor died: those
    already in one of the predecessor's files are not written again (``router.writerproc``)."""

    def __init__(self, left: int, skip: list[list[object]]) -> None:
        self.left = left
        self.counted, self.uncounted = _file_keys(skip) if left > 0 else (set(), set())

    def take(self, writer: ParquetBatchWriter, recs: list[list[Any]]) -> tuple[list[list[Any]], bool]:
        """Filter one frame's records; returns them and whether the last resent record just passed."""
        if self.left <= 0:
            return recs, False
        again, rest = recs[: self.left], recs[self.left :]
        self.left -= len(again)
        keep = []
        for r in again:
            k = (r[0], r[1], r[11])
            if k in self.counted:  # in a file the dead writer reported: already counted as written
                writer.dup_skipped += 1
            elif k in self.uncounted:  # in the file it was writing when it died: in place, so written
                writer.written += 1
            else:
                keep.append(r)
        return [*keep, *rest], self.left <= 0


def _silence(out: IO[bytes]) -> None:
    """Point ``out``'s descriptor at /dev/null, so that the bytes left in its buffer, flushed again at
    interpreter exit, do not raise a second ``BrokenPipeError`` (the recipe of Python's ``signal`` docs)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, out.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # not a real descriptor
        pass


PAUSE_SECONDS = 0.0005
"""Sleep after each frame and each conversion step (each about 1 ms of CPU)."""


def _pause() -> None:
    """Give the CPU back for a moment between steps of about 1 ms.

    The writer shares its CPU with the serving process (with one CPU, or pinned). Decoding a frame,
    converting a slice and writing a file are each short; without pauses the writer would keep
    the CPU for a whole scheduler slice of several milliseconds whenever it runs, and the 16 requests
    in flight at that moment would wait that long (the p95 to p99 band at 16 connections, see
    docs/benchmarks.md). The pauses cost wall time, not CPU: at 1 ms of work per 0.5 ms pause the writer
    can still use two thirds of a CPU.
    """
    time.sleep(PAUSE_SECONDS)


def _lower_priority(nice: int, idle: bool = False) -> None:
    """Run at ``nice`` (background work: the serving process gets the CPU when both want it).

    Only lowers priority (an unprivileged process cannot raise it). At the default 10 the writer keeps
    up with a router that keeps its CPU busy (measured: backlog under 30,000 records at 16,000 req/s
    for 24 s); at 19 it fell behind by 7,000 records a second in the same run. With ``idle`` it also
    runs under ``SCHED_IDLE`` (``ROUTER_EVENTS_WRITER_IDLE``, see ``router.settings``).
    """
    try:
        current = os.getpriority(os.PRIO_PROCESS, 0)
        if nice > current:
            os.setpriority(os.PRIO_PROCESS, 0, nice)
    except OSError as e:
        log.warning("cannot set the event writer's nice value to %d: %s", nice, e)
    if idle:
        try:
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
        except (OSError, AttributeError) as e:  # not Linux, or refused
            log.warning("cannot run the event writer under SCHED_IDLE: %s", e)


def main() -> int:
    """Entry point of the writer process.

    Returns:
        The exit code.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    logging.basicConfig(level="INFO", format="%(asctime)s %(levelname)s %(name)s [%(process)d] %(message)s")
    cfg = orjson.loads(sys.argv[1])
    _lower_priority(int(cfg.get("nice", WRITER_NICE)), bool(cfg.get("idle", False)))
    return serve(cfg, sys.stdin.fileno(), sys.stdout.buffer)


if __name__ == "__main__":
    sys.exit(main())
