"""What the serving process knows of one event writer process, and what it would resend to the next.

Frames sent to the writer stay here until the writer acknowledges them (every record of the frame
is in a file, or counted as dropped). If the writer dies (``kill -9``, out of memory), the frames it
never acknowledged are sent again to the next writer together with the files it named since its last
acknowledgement; the next writer reads those files' keys and writes only the records no file holds,
so a record is neither lost nor written twice. At most ``keep_records`` records are kept for
resending; beyond that the oldest frames are let go (``evicted``) and, should the writer then die,
what it held is counted as dropped instead.
"""

from __future__ import annotations

import logging
import subprocess
import threading
from collections import deque

import orjson

log = logging.getLogger(__name__)


class WriterChild:
    """One writer process and what the serving process knows of it.

    Args:
        proc: the writer process.
        keep_records: records kept for resending (the sink's ``max_buffer``).
    """

    def __init__(self, proc: subprocess.Popen[bytes], keep_records: int = 1_000_000) -> None:
        self.proc = proc
        self.keep_records = keep_records
        self.sent = 0
        # the latest report, swapped in as one tuple: written, dropped, failures, files, error
        self.counts: tuple[int, int, int, int, str | None] = (0, 0, 0, 0, None)
        # the file the writer said it was writing when it last reported (path, records), or None
        self.pending: tuple[str, int] | None = None
        self.reader: threading.Thread | None = None
        self.dup_skipped = 0
        self.frames = 0
        self.acked = 0
        self.evicted = 0
        self.named: list[str] = []
        """Files named since the last acknowledgement (written, or being written)."""
        self._unacked: deque[tuple[int, bytes, int]] = deque()
        self._unacked_records = 0
        self._lock = threading.Lock()

    def keep(self, payload: bytes, n: int) -> None:
        """Remember a frame just sent (until it is acknowledged).

        Args:
            payload: the frame's JSON array.
            n: its record count.
        """
        with self._lock:
            self.frames += 1
            self._unacked.append((self.frames, payload, n))
            self._unacked_records += n
            while self._unacked_records > self.keep_records and self._unacked:
                _, _, m = self._unacked.popleft()
                self._unacked_records -= m
                self.evicted += m

    def take(self, line: bytes) -> None:
        """Take in one report line of the writer."""
        try:
            d = orjson.loads(line)
            counts = (
                int(d["written"]),
                int(d["dropped"]),
                int(d["failures"]),
                int(d["files"]),
                d.get("error"),
            )
            p = d.get("pending")
            pending = (str(p[0]), int(p[1])) if p else None
            acked = int(d.get("acked", 0))
            dup = int(d.get("dup_skipped", 0))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, IndexError):
            log.warning("unreadable report from the event writer: %r", line[:200])
            return
        with self._lock:
            if pending is not None and pending[0] not in self.named:
                self.named.append(pending[0])
            if acked > self.acked:
                self.acked = acked
                self.named = [pending[0]] if pending is not None else []
                q = self._unacked
                while q and q[0][0] <= acked:
                    self._unacked_records -= q.popleft()[2]
        self.pending = pending
        self.dup_skipped = dup
        self.counts = counts

    def resend_plan(self) -> tuple[list[tuple[bytes, int]], list[list[object]]] | None:
        """After the writer died: the frames to send again and the files the next writer must check.

        Returns:
            ``(frames, skip_files)``, or None when frames were let go (nothing can be resent safely).
        """
        with self._lock:
            if self.evicted or not self._unacked:
                return None
            frames = [(payload, n) for _, payload, n in self._unacked]
            current = self.pending[0] if self.pending is not None else None
            skip: list[list[object]] = [[p, p != current] for p in self.named]
        if current is not None and current not in self.named:
            skip.append([current, False])
        return frames, skip
