"""The admin API under ``/admin/``: read and change routes, reload the routes file, read stats and logs.

Every request needs a bearer key with the role it asks for (``read`` to read, ``admin`` to change).
Changes load their models off the event loop, swap the route table in one assignment and are appended
to the change log; refused changes are remembered for ``GET /admin/errors``.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qs

import orjson

from router.auth import KeyRing
from router.changelog import doc_sha
from router.codecs import decode_json, int_header
from router.dataplane import DataPlane
from router.errors import BadRequest, NotFound, RouterError, RoutesInvalid
from router.routes import NAME_PATTERN, load_document, parse_model_routes
from router.tables import RouteTable, dump_routes

Answer = tuple[int, bytes, list[tuple[bytes, bytes]]]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
ReadBody = Callable[[Receive, int], Awaitable[bytes]]


class AdminApi:
    """Answers ``/admin/`` requests against a data plane.

    Args:
        plane: the data plane.
        keys: the accepted bearer keys.
        read_body: reads a request body within the size limit.
    """

    def __init__(self, plane: DataPlane, keys: KeyRing, read_body: ReadBody) -> None:
        self.plane = plane
        self.keys = keys
        self.read_body = read_body
        self.lock = asyncio.Lock()
        """Serialises changes (and following the shared state file) within this process."""

    async def handle(
        self, method: str, path: str, scope: MutableMapping[str, Any], receive: Receive, h: dict[bytes, bytes]
    ) -> Answer:
        """Answer one admin request.

        Args:
            method: the HTTP method.
            path: the path (starts with ``/admin/``).
            scope: the ASGI scope (query string).
            receive: the ASGI receive callable (body).
            h: request headers, names lower-case.

        Returns:
            Status, body and headers.

        Raises:
            RouterError: unauthorised, forbidden, unknown path, invalid routes, unloadable model.
        """
        plane = self.plane
        auth = h.get(b"authorization")
        parts = path[len("/admin/") :].rstrip("/").split("/")
        if method == "GET":
            self.keys.require(auth, "read")
            if parts == ["routes"]:
                return _ok({"revision": plane.table.revision, "document": plane.table.doc.dump()})
            if len(parts) == 3 and parts[0] == "models" and parts[2] == "routes":
                mt = plane.model_table(parts[1])
                return _ok({"model": mt.name, "revision": plane.table.revision, "routes": dump_routes(mt)})
            if parts == ["stats"]:
                return _ok({"variants": plane.all_stats()})
            if parts == ["guard", "events"]:
                return _ok({"events": plane.guard_events})
            if parts == ["changes"]:
                qs = parse_qs(scope.get("query_string", b"").decode("latin-1"))
                limit = int_header(qs.get("limit", ["1000"])[0].encode(), 1000)
                return _ok({"changes": plane.changes(max(1, min(limit, 100_000)))})
            if parts == ["errors"]:
                return _ok({"errors": plane.load_errors})
            raise NotFound(f"no such admin path {path}")
        if method in ("PUT", "POST", "DELETE"):
            key = self.keys.require(auth, "admin")
            if method == "PUT" and len(parts) == 3 and parts[0] == "models" and parts[2] == "routes":
                body = await self.read_body(receive, int_header(h.get(b"content-length")))
                return await self.put_routes(parts[1], body, key.name)
            if method == "DELETE" and len(parts) == 3 and parts[0] == "models" and parts[2] == "routes":
                return await self.delete_routes(parts[1], key.name)
            if method == "POST" and parts == ["reload"]:
                return await self.reload(key.name)
            raise NotFound(f"no such admin path {method} {path}")
        return (
            405,
            orjson.dumps({"error": f"{method} is not allowed on {path}", "code": "method_not_allowed"}),
            [],
        )

    async def put_routes(self, name: str, body: bytes, actor: str) -> Answer:
        """Validate, load and install one model's routes.

        Args:
            name: the model name.
            body: the routes as JSON.
            actor: the key name (recorded in the change log).

        Returns:
            The answer.
        """
        plane = self.plane
        if not re.match(NAME_PATTERN, name):
            raise BadRequest(f"model name {name!r} must match {NAME_PATTERN}")
        routes = parse_model_routes(decode_json(body), name)
        async with self.lock:
            before = dump_routes(plane.table.models[name]) if name in plane.table.models else None
            try:
                mt = await asyncio.to_thread(plane.build_model, name, routes)
            except RouterError as e:
                plane.report_error("routes.put", f"routes:{name}", e)
                raise
            plane.install(plane.replace_model(name, mt))
            after = dump_routes(mt)
            plane.record_change(actor, "routes.put", f"routes:{name}", before, after)
        return _ok({"model": name, "revision": plane.table.revision, "routes": after})

    async def delete_routes(self, name: str, actor: str) -> Answer:
        """Stop serving one model.

        Args:
            name: the model name.
            actor: the key name.

        Returns:
            The answer.
        """
        plane = self.plane
        async with self.lock:
            mt = plane.model_table(name)
            before = dump_routes(mt)
            plane.install(plane.replace_model(name, None))
            plane.record_change(actor, "routes.delete", f"routes:{name}", before, None)
        return _ok({"model": name, "revision": plane.table.revision, "deleted": True})

    async def reload(self, actor: str) -> Answer:
        """Re-read the routes file and serve it (all models load before anything changes).

        Args:
            actor: the key name.

        Returns:
            The answer.
        """
        plane = self.plane
        path = plane.settings.routes
        if path is None:
            raise BadRequest("the router was started without a routes file, so there is nothing to reload")
        async with self.lock:
            before = plane.table.doc.dump()
            try:
                doc = await asyncio.to_thread(load_document, path)
                table: RouteTable = await asyncio.to_thread(plane.build_table, doc)
            except RouterError as e:
                plane.report_error("routes.reload", "routes:*", e)
                raise
            plane.origin_sha = doc_sha(await asyncio.to_thread(read_bytes, path))
            plane.install(table)
            plane.record_change(actor, "routes.reload", "routes:*", before, doc.dump())
        return _ok({"revision": plane.table.revision, "document": doc.dump()})


def read_bytes(path: Any) -> bytes:
    """Read a routes file.

    Args:
        path: the file.

    Returns:
        Its bytes.

    Raises:
        RoutesInvalid: it cannot be read.
    """
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise RoutesInvalid(f"cannot read routes file {path}: {e.strerror}") from e


def _ok(data: Any) -> Answer:
    return 200, orjson.dumps(data), []
