"""The routes a process starts with, and following the state file that workers of one state dir share.

At start the router serves the persisted routes document when it derives from the same routes file
(accepted changes and guard cuts survive a restart), otherwise the routes file. Afterwards it polls the
state file, so that every worker serves what another worker accepted.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

import orjson

from router.admin import read_bytes
from router.changelog import doc_sha
from router.dataplane import DataPlane
from router.errors import RouterError
from router.routes import load_document, parse_document

log = logging.getLogger(__name__)


class RoutesState:
    """Loads the initial route table and follows the shared state file.

    Args:
        plane: the data plane.
        lock: the lock that serialises route changes in this process.
    """

    def __init__(self, plane: DataPlane, lock: asyncio.Lock) -> None:
        self.plane = plane
        self.lock = lock
        self._mtime = 0

    async def load(self) -> None:
        """Build and install the first route table (blocking work runs off the loop).

        Raises:
            RouterError: the routes file is invalid or a model cannot be loaded.
        """
        plane = self.plane
        routes = plane.settings.routes
        doc = None
        origin = None
        if routes is not None:
            origin = doc_sha(await asyncio.to_thread(read_bytes, routes))
            doc = await asyncio.to_thread(load_document, routes)
        plane.origin_sha = origin
        state = read_state(plane.state_path)
        fresh = True
        if state is not None and state.get("origin_sha") == origin and "document" in state:
            try:
                doc = parse_document(state["document"])
                fresh = False
                self._mtime = plane.state_path.stat().st_mtime_ns
            except RouterError as e:
                log.warning("ignoring persisted routes state: %s", e.message)
        if doc is None:
            doc = parse_document({})
        table = await asyncio.to_thread(plane.build_table, doc)
        plane.install(table)
        if fresh:
            plane.persist_state()
            self._mtime = plane.state_path.stat().st_mtime_ns

    async def follow(self) -> None:
        """Poll the state file every ``state_poll_seconds`` and serve what another worker wrote."""
        plane = self.plane
        while True:
            await asyncio.sleep(plane.settings.state_poll_seconds)
            try:
                mtime = plane.state_path.stat().st_mtime_ns
            except OSError:
                continue
            if mtime == self._mtime:
                continue
            self._mtime = mtime
            state = read_state(plane.state_path)
            if not state or state.get("pid") == os.getpid() or "document" not in state:
                continue
            async with self.lock:
                try:
                    doc = parse_document(state["document"])
                    if doc.dump() == plane.table.doc.dump():
                        continue
                    table = await asyncio.to_thread(plane.build_table, doc)
                    plane.install(table)
                    log.info("followed routes state written by pid %s", state.get("pid"))
                except RouterError as e:
                    plane.report_error("routes.follow", "routes:*", e)


def read_state(path: Any) -> dict[str, Any] | None:
    """Read the state file.

    Args:
        path: the file.

    Returns:
        Its object, or None when it is missing or unreadable.
    """
    try:
        with open(path, "rb") as f:
            data = orjson.loads(f.read())
    except (OSError, orjson.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None
