"""The event writer process: ``python -m router.eventwriter CONFIG_JSON`` (started by ``EventSink``).

Reads frames from stdin (``FRAME`` header, then a JSON array of records), writes Parquet files when
``flush_rows`` records are held or ``flush_seconds`` have passed, and after each write attempt prints
its counts as one JSON line on stdout. It ignores SIGINT and SIGTERM (they reach the whole process
group, and the serving process still has records to hand over while it drains) and exits when stdin
closes, after writing what it holds.
"""

from __future__ import annotations

import logging
import os
import select
import signal
import sys
import time

import orjson

from router.events import FRAME, ParquetBatchWriter

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


def serve(cfg: dict[str, object], fd_in: int, out: object) -> int:
    """Run the writer loop until ``fd_in`` ends.

    Args:
        cfg: ``root``, ``flush_rows``, ``flush_seconds``, ``max_buffer``.
        fd_in: the frames' file descriptor.
        out: a binary stream for the reports.

    Returns:
        The exit code.
    """
    writer = ParquetBatchWriter(str(cfg["root"]), int(cfg["max_buffer"]))  # type: ignore[call-overload]
    flush_rows = int(cfg["flush_rows"])  # type: ignore[call-overload]
    flush_seconds = float(cfg["flush_seconds"])  # type: ignore[arg-type]
    import pyarrow as pa
    import pyarrow.parquet  # imported before the first batch arrives

    pa.array([0], type=pa.int64())

    def report() -> None:
        out.write(writer.report())  # type: ignore[attr-defined]
        out.flush()  # type: ignore[attr-defined]

    last = time.monotonic()
    open_ = True
    while open_:
        timeout = max(0.0, last + flush_seconds - time.monotonic())
        ready, _, _ = select.select([fd_in], [], [], timeout)
        if ready:
            head = _read_exact(fd_in, FRAME.size)
            payload = None
            if head is not None:
                size, _count = FRAME.unpack(head)
                payload = _read_exact(fd_in, size)
            if payload is None:
                open_ = False
            else:
                writer.rows.extend(orjson.loads(payload))
        now = time.monotonic()
        if len(writer.rows) >= flush_rows or now - last >= flush_seconds or not open_:
            if writer.rows:
                writer.flush()
                report()
            last = now
    report()
    return 0


def main() -> int:
    """Entry point of the writer process.

    Returns:
        The exit code.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    logging.basicConfig(level="INFO", format="%(asctime)s %(levelname)s %(name)s [%(process)d] %(message)s")
    try:
        os.nice(10)  # background work: yield the CPU to the serving process when both want it
    except OSError:
        pass
    cfg = orjson.loads(sys.argv[1])
    return serve(cfg, sys.stdin.fileno(), sys.stdout.buffer)


if __name__ == "__main__":
    sys.exit(main())
