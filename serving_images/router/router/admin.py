"""The admin API under ``/admin/``: read and change routes, reload the routes file, read stats and logs.

Every request needs a bearer key with the role it asks for (``read`` to read, ``admin`` to change).
Changes go through ``router.control``: models load and verify here first (off the event loop), then
the change commits to the routes store with its audit record, then this replica serves the new
generation (the others follow the store). Answers carry that ``generation``. Optional headers
``X-Change-Reason``, ``X-Run-Id`` and ``X-Actor`` (who is behind the admin key, recorded as
``<actor> via <key name>``) go into the store row and its audit record. Refused changes are remembered for
``GET /admin/errors``.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qs

import orjson

from router.auth import KeyRing
from router.codecs import decode_json, int_header
from router.control import Control
from router.dataplane import DataPlane
from router.errors import BadRequest, NotFound
from router.routes import NAME_PATTERN, parse_model_routes
from router.tables import dump_routes

Answer = tuple[int, bytes, list[tuple[bytes, bytes]]]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
ReadBody = Callable[[Receive, int], Awaitable[bytes]]


class AdminApi:
    """Answers ``/admin/`` requests against a data plane.

    Args:
        plane: the data plane.
        control: the control module (store, loading, swaps).
        keys: the accepted bearer keys.
        read_body: reads a request body within the size limit.
    """

    def __init__(self, plane: DataPlane, control: Control, keys: KeyRing, read_body: ReadBody) -> None:
        self.plane = plane
        self.control = control
        self.keys = keys
        self.read_body = read_body

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
            table = plane.table
            if parts == ["routes"]:
                return _ok(
                    {"revision": table.revision, "generation": table.generation, "document": table.doc.dump()}
                )
            if len(parts) == 3 and parts[0] == "models" and parts[2] == "routes":
                mt = plane.model_table(parts[1])
                return _ok(
                    {"model": mt.name, "revision": table.revision, "generation": table.generation,
                     "routes": dump_routes(mt)}
                )
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
                return await self.put_routes(parts[1], body, _actor(h, key.name), h)
            if method == "DELETE" and len(parts) == 3 and parts[0] == "models" and parts[2] == "routes":
                return await self.delete_routes(parts[1], _actor(h, key.name), h)
            if method == "POST" and parts == ["reload"]:
                return await self.reload(_actor(h, key.name), h)
            raise NotFound(f"no such admin path {method} {path}")
        return (
            405,
            orjson.dumps({"error": f"{method} is not allowed on {path}", "code": "method_not_allowed"}),
            [],
        )

    async def put_routes(self, name: str, body: bytes, actor: str, h: dict[bytes, bytes]) -> Answer:
        """Validate and load one model's routes here, commit them to the store, serve the new generation.

        Args:
            name: the model name.
            body: the routes as JSON.
            actor: the key name (recorded in the store row, its audit record and the change log).
            h: request headers (``X-Change-Reason``, ``X-Run-Id``).

        Returns:
            The answer, with the ``generation`` that carries the change.
        """
        if not re.match(NAME_PATTERN, name):
            raise BadRequest(f"model name {name!r} must match {NAME_PATTERN}")
        routes = parse_model_routes(decode_json(body), name)
        reason, run_id = _why(h, f"PUT routes of {name}")
        gen, after = await asyncio.to_thread(self.control.put, name, routes, actor, reason, run_id)
        return _ok({"model": name, "revision": self.plane.table.revision, "generation": gen, "routes": after})

    async def delete_routes(self, name: str, actor: str, h: dict[bytes, bytes]) -> Answer:
        """Stop serving one model (on every replica: the removal goes through the store).

        Args:
            name: the model name.
            actor: the key name.
            h: request headers (``X-Change-Reason``, ``X-Run-Id``).

        Returns:
            The answer.
        """
        reason, run_id = _why(h, f"DELETE routes of {name}")
        gen = await asyncio.to_thread(self.control.delete, name, actor, reason, run_id)
        return _ok({"model": name, "revision": self.plane.table.revision, "generation": gen, "deleted": True})

    async def reload(self, actor: str, h: dict[bytes, bytes]) -> Answer:
        """Make the routes file the desired state of every model (all models load before anything commits).

        Args:
            actor: the key name.
            h: request headers (``X-Change-Reason``, ``X-Run-Id``).

        Returns:
            The answer.
        """
        reason, run_id = _why(h, "reload of the routes file")
        gen, doc = await asyncio.to_thread(self.control.reload, actor, reason, run_id)
        return _ok({"revision": self.plane.table.revision, "generation": gen, "document": doc})


def _why(h: dict[bytes, bytes], default: str) -> tuple[str, str | None]:
    """The reason (``X-Change-Reason``) and run id (``X-Run-Id``) of a change, each at most 300 characters."""
    reason = h.get(b"x-change-reason", b"").decode("utf-8", "replace").strip()[:300] or default
    rid = h.get(b"x-run-id", b"").decode("utf-8", "replace").strip()[:300] or None
    return reason, rid


def _actor(h: dict[bytes, bytes], key_name: str) -> str:
    """Who a change is recorded for: ``X-Actor`` (the user or DAG behind an admin-key holder such as
    Airflow), as ``<actor> via <key name>``; else the key name. At most 200 characters."""
    on_behalf = h.get(b"x-actor", b"").decode("utf-8", "replace").strip()
    return f"{on_behalf} via {key_name}"[:200] if on_behalf else key_name


def _ok(data: Any) -> Answer:
    return 200, orjson.dumps(data), []
