"""The HTTP adapter: a raw ASGI app that only translates between HTTP and the data plane."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson

from router import __version__
from router.admin import AdminApi
from router.auth import KeyRing
from router.binary import HEADER, check_outputs, decode_binary, oip_answer
from router.codecs import decode_json, int_header, mlflow_feeds, mlflow_response, oip_feeds
from router.consent import resolve_consent
from router.control import Control
from router.dataplane import DataPlane
from router.errors import BadRequest, NotFound, NotReady, PayloadTooLarge, RouterError
from router.grpc_service import EXTENSIONS, GrpcServer, start_grpc
from router.metrics import render_metrics
from router.openapi import openapi_document

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_JSON = b"application/json"
_OCTET = b"application/octet-stream"
_TEXT = b"text/plain; version=0.0.4; charset=utf-8"


class RouterApp:
    """The ASGI application (``create_app`` builds it).

    Args:
        plane: the data plane.
        keys: the accepted bearer keys.
    """

    def __init__(self, plane: DataPlane, keys: KeyRing) -> None:
        self.plane = plane
        self.keys = keys
        self.settings = plane.settings
        self.max_body = plane.settings.max_body_bytes
        self.control = Control(plane)
        self.admin = AdminApi(plane, self.control, keys, self._read_body)
        self.grpc: GrpcServer | None = None
        self.http_responses: dict[int, int] = {}
        self.in_flight = 0
        self._openapi = orjson.dumps(openapi_document())

    # ------------------------------------------------------------------ ASGI entry

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ASGI connection scope."""
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            msg = await receive()
            if msg["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except RouterError as e:
                    log.error("startup failed: %s", e.message)
                    await send({"type": "lifespan.startup.failed", "message": e.message})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif msg["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def startup(self) -> None:
        """Serve the store's routes (the routes file seeds models it never held), start writers and polling."""
        await asyncio.to_thread(self.control.start)
        self.plane.start()
        if self.settings.grpc_port is not None:
            self.grpc = await start_grpc(self)
        # Everything loaded so far (modules, sessions, tables) lives as long as the process: move it out
        # of the collector's reach, so full collections only walk what requests allocate.
        gc.collect()
        gc.freeze()
        self.plane.ready = True
        self.control.start_polling()
        log.info("router ready: models %s (pid %d)", sorted(self.plane.table.models), os.getpid())

    async def shutdown(self) -> None:
        """Stop taking work, finish shadow work, flush events."""
        self.plane.ready = False
        await asyncio.to_thread(self.control.stop)
        if self.grpc is not None:  # RPCs in flight finish (their events are flushed below)
            await self.grpc.stop(self.settings.drain_timeout_seconds)
        await asyncio.to_thread(self.plane.stop)
        sink = self.plane.sink
        if sink is not None:
            log.info("events flushed: %d written, %d dropped", sink.written, sink.dropped)

    # ------------------------------------------------------------------ HTTP

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.in_flight += 1
        try:
            status, body, headers = await self._dispatch(scope, receive)
        except RouterError as e:
            status, body, headers = e.status, orjson.dumps({"error": e.message, "code": e.code}), []
        except Exception as e:  # last line: log, answer JSON, never a traceback on the wire
            status, body, headers = _internal(e, scope.get("method"), scope.get("path"))
        finally:
            self.in_flight -= 1
        self._finish(status, body, headers, scope["path"])
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    def _finish(self, status: int, body: bytes, headers: list[tuple[bytes, bytes]], path: str) -> None:
        """Add the headers every response carries and count the response."""
        if status == 200 and path == "/metrics":
            ctype = _TEXT
        else:
            ctype = _OCTET if headers and headers[-1][0] == HEADER else _JSON
        headers.append((b"content-type", ctype))
        headers.append((b"content-length", b"%d" % len(body)))
        if self.plane.close_connections:
            headers.append((b"connection", b"close"))
        responses = self.http_responses
        responses[status] = responses.get(status, 0) + 1

    @staticmethod
    def is_score_path(path: str) -> bool:
        """Whether ``POST path`` is a scoring endpoint (answered by ``serve_score``)."""
        return (
            path == "/invocations"
            or (path.startswith("/models/") and path.endswith("/invocations"))
            or (path.startswith("/v2/models/") and path.endswith("/infer"))
        )

    def serve_score(
        self, path: str, body: bytes, h: dict[bytes, bytes]
    ) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
        """Answer ``POST path`` (a scoring endpoint) with the whole body at hand, without awaiting.

        The HTTP protocol calls this directly for scoring requests (``router.httpproto``); the ASGI
        path calls it too, so both answer byte for byte the same.

        Args:
            path: the request path (``is_score_path`` is true for it).
            body: the request body.
            h: the request headers, names lower-case.

        Returns:
            Status, body and headers, the common headers (type, length, close when draining) added.
        """
        self.in_flight += 1
        try:
            status, out, headers = self._score_path(path, body, h)
        except RouterError as e:
            return self.error_response(e, path)
        except Exception as e:  # last line: log, answer JSON, never a traceback on the wire
            status, out, headers = _internal(e, "POST", path)
        finally:
            self.in_flight -= 1
        self._finish(status, out, headers, path)
        return status, out, headers

    def error_response(self, e: RouterError, path: str) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
        """The finished JSON answer for a refused request.

        Args:
            e: what was wrong.
            path: the request path.

        Returns:
            Status, body and headers.
        """
        headers: list[tuple[bytes, bytes]] = []
        out = orjson.dumps({"error": e.message, "code": e.code})
        self._finish(e.status, out, headers, path)
        return e.status, out, headers

    def _score_path(
        self, path: str, body: bytes, h: dict[bytes, bytes]
    ) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
        if len(body) > self.max_body:
            raise PayloadTooLarge(f"request body exceeds the limit of {self.max_body} bytes")
        if path.endswith("/invocations"):
            if path == "/invocations":
                name = self.plane.table.default_model
                if name is None:
                    raise NotFound("no model is served, so /invocations has no default model")
            else:
                name = path[len("/models/") : -len("/invocations")]
            return self._score(name, body, h, mlflow=True, version=None)
        parts = path[len("/v2/models/") : -len("/infer")].rstrip("/").split("/")
        if len(parts) == 1:
            return self._score(parts[0], body, h, mlflow=False, version=None)
        if len(parts) == 3 and parts[1] == "versions":
            return self._score(parts[0], body, h, mlflow=False, version=parts[2])
        raise NotFound(f"no such path {path}")

    async def _read_body(self, receive: Receive, content_length: int) -> bytes:
        if content_length > self.max_body:
            raise PayloadTooLarge(
                f"request body of {content_length} bytes exceeds the limit of {self.max_body}"
            )
        msg = await receive()
        if msg["type"] == "http.disconnect":
            raise BadRequest("client disconnected before sending the whole body")
        body: bytes = msg.get("body", b"")
        if not msg.get("more_body", False):  # the common case: the whole body in one message
            if len(body) > self.max_body:
                raise PayloadTooLarge(f"request body exceeds the limit of {self.max_body} bytes")
            return body
        chunks = [body]
        size = len(body)
        while True:
            msg = await receive()
            if msg["type"] == "http.disconnect":
                raise BadRequest("client disconnected before sending the whole body")
            chunk = msg.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                raise PayloadTooLarge(f"request body exceeds the limit of {self.max_body} bytes")
            chunks.append(chunk)
            if not msg.get("more_body", False):
                break
        return b"".join(chunks)

    async def _dispatch(self, scope: Scope, receive: Receive) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
        method = scope["method"]
        path: str = scope["path"]
        h: dict[bytes, bytes] = dict(scope["headers"])
        if method == "POST" and self.is_score_path(path):
            body = await self._read_body(receive, int_header(h.get(b"content-length")))
            return self._score_path(path, body, h)
        if path.startswith("/admin/"):
            return await self.admin.handle(method, path, scope, receive, h)
        if method != "GET" and method != "HEAD":
            if path in _GET_PATHS or path.startswith("/v2/models/"):
                return (
                    405,
                    orjson.dumps(
                        {"error": f"{method} is not allowed on {path}", "code": "method_not_allowed"}
                    ),
                    [],
                )
            raise NotFound(f"no such path {path}")
        return self._get(path)

    def _score(
        self, name: str, body: bytes, h: dict[bytes, bytes], mlflow: bool, version: str | None
    ) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
        plane = self.plane
        if not plane.ready:
            raise NotReady("router is not ready")
        header_length = None if mlflow else h.get(HEADER)
        req = decode_json(body) if header_length is None else decode_binary(body, header_length)
        pin_raw = h.get(b"x-variant")
        pin = None
        if pin_raw is not None:
            key = self.keys.identify(h.get(b"authorization"))
            plane.check_pin(key.roles if key else None)
            pin = pin_raw.decode("latin-1")
        rid_raw = h.get(b"x-request-id")
        if rid_raw:
            request_id = rid_raw.decode("latin-1")[:128]
            rid_header = request_id.encode("latin-1")
        else:
            request_id = plane.next_request_id()
            rid_header = request_id.encode()
        consent = resolve_consent(h.get(b"x-consent"), None if mlflow else req, self.settings.consent_default)
        v, outputs, records = plane.score(
            name,
            mlflow_feeds if mlflow else _oip_feeds,
            req,
            h.get(b"x-unit-id"),
            pin,
            consent,
            request_id,
            version,
        )
        if mlflow:
            out = mlflow_response(v.model, outputs, records)
            return 200, out, [v.headers[0], v.headers[1], (b"x-request-id", rid_header)]
        out, json_length = oip_answer(req, name, v.version, request_id, v.model, outputs)
        headers = [v.headers[0], v.headers[1], (b"x-request-id", rid_header)]
        if json_length is not None:  # binary outputs: ``_finish`` gives it the octet-stream type
            headers.append((HEADER, b"%d" % json_length))
        return 200, out, headers

    def _get(self, path: str) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
        plane = self.plane
        if path == "/v2/health/live":
            return 200, b'{"live":true}', []
        if path == "/v2/health/ready":
            return _readiness(plane, self.control)
        if path == "/metrics":
            return 200, render_metrics(plane, self).encode(), []
        if path == "/openapi.json":
            return 200, self._openapi, []
        if path == "/v2":
            return (
                200,
                orjson.dumps({"name": "modelgate-router", "version": __version__, "extensions": EXTENSIONS}),
                [],
            )
        if path.startswith("/v2/models/"):
            parts = path[len("/v2/models/") :].rstrip("/").split("/")
            mt = plane.model_table(parts[0])
            if len(parts) == 1:
                return 200, orjson.dumps(mt.primary().model.metadata(mt.name)), []
            if len(parts) == 2 and parts[1] == "ready":
                ok = plane.ready and not plane.draining
                return (200 if ok else 503), orjson.dumps({"name": mt.name, "ready": ok}), []
            if len(parts) >= 3 and parts[1] == "versions":
                v = plane.choose(mt, None, None, parts[2])
                if len(parts) == 3:
                    meta = v.model.metadata(mt.name)
                    meta["versions"] = [v.version]
                    return 200, orjson.dumps(meta), []
                if len(parts) == 4 and parts[3] == "ready":
                    return 200, orjson.dumps({"name": mt.name, "ready": plane.ready}), []
        raise NotFound(f"no such path {path}")


def _oip_feeds(req: Any, model: Any, allow_non_finite: bool) -> tuple[dict[str, Any], bool]:
    feeds = oip_feeds(req, model, allow_non_finite)
    if "outputs" in req:  # refused before scoring, so a refused request leaves no event
        check_outputs(req["outputs"], model)
    return feeds, False


_GET_PATHS = {"/v2/health/live", "/v2/health/ready", "/metrics", "/openapi.json", "/v2"}


def _readiness(plane: DataPlane, control: Control) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
    """``/v2/health/ready``: 503 while starting or draining; the routes generation served and whether the
    store is out of reach (``stale``: still serving the last good routes); names a registry outage."""
    ok = plane.ready and not plane.draining
    gen = plane.table.generation
    doc: dict[str, Any] = {"ready": ok, "generation": gen, "stale": control.stale}
    unreachable = plane.loader.resolver.unreachable
    if unreachable is not None:  # still serving, from the cache: say so
        doc["degraded"] = f"registry unreachable, serving cached models: {unreachable}"
    if control.stale:
        doc["store"] = f"routes store unreachable, serving generation {gen}: {control.stale_reason}"
    if control.behind is not None:
        doc["behind"] = control.behind
    return (200 if ok else 503), orjson.dumps(doc), [(b"x-routes-generation", b"%d" % gen)]


def _internal(e: Exception, method: Any, path: Any) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
    log.exception("unhandled error on %s %s", method, path, exc_info=e)
    body = orjson.dumps({"error": f"internal error: {type(e).__name__}", "code": "internal"})
    return 500, body, []


def create_app(plane: DataPlane, keys: KeyRing) -> RouterApp:
    """Build the ASGI app around a data plane (the plane's routes load at lifespan startup).

    Args:
        plane: the data plane.
        keys: the accepted keys.

    Returns:
        The app.
    """
    return RouterApp(plane, keys)
