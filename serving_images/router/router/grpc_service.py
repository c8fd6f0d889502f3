"""The OIP v2 gRPC adapter: ``inference.GRPCInferenceService`` on the router's own event loop and data plane.

The server is ``grpc.aio`` on the loop uvicorn runs (uvloop), so gRPC and REST requests are served by the
same thread, the same route table and the same ``DataPlane.score``: the same variant split, sticky unit
ids (metadata ``x-unit-id``), pinning (``x-variant`` with ``authorization: Bearer`` of a ``pin`` key),
consent (``x-consent``), statistics, events, guard and shadow. Answers carry metadata ``x-variant``,
``x-model-version`` and ``x-request-id``. Router errors map to gRPC status codes by their HTTP status.
Off unless ``ROUTER_GRPC_PORT`` (``--grpc-port``) is set; see ``docs/router.md``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import grpc
from grpc import aio

from router import __version__
from router._proto import grpc_predict_v2_pb2 as pb
from router.consent import grpc_consent
from router.errors import NotFound, NotReady, RouterError
from router.grpc_codec import grpc_feeds, infer_response, model_metadata

if TYPE_CHECKING:
    from router.app import RouterApp

log = logging.getLogger(__name__)

SERVICE = "inference.GRPCInferenceService"
EXTENSIONS = ["binary_tensor_data"]
"""What ``ServerMetadata`` (and REST ``GET /v2``) report: the binary tensor extension on REST."""

_CODES = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    404: grpc.StatusCode.NOT_FOUND,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    503: grpc.StatusCode.UNAVAILABLE,
}


class InferenceService:
    """The six OIP v2 RPCs, translated onto the router app's data plane.

    Args:
        app: the router app (its plane, keys and counters).
    """

    def __init__(self, app: RouterApp) -> None:
        self.app = app
        self.plane = app.plane
        self.responses: dict[str, int] = {}
        """gRPC answers by status code name (``/metrics``: ``router_grpc_responses_total``)."""

    def _count(self, code: grpc.StatusCode) -> None:
        name = code.name
        self.responses[name] = self.responses.get(name, 0) + 1

    async def _fail(self, context: aio.ServicerContext, e: Exception, rpc: str) -> None:
        if isinstance(e, RouterError):
            code, message = _CODES.get(e.status, grpc.StatusCode.INTERNAL), e.message
        else:  # last line: log, answer a status, never a traceback on the wire
            log.exception("unhandled error in gRPC %s", rpc, exc_info=e)
            code, message = grpc.StatusCode.INTERNAL, f"internal error: {type(e).__name__}"
        self._count(code)
        await context.abort(code, message)

    async def server_live(self, request: Any, context: aio.ServicerContext) -> Any:
        """ServerLive: true while the process runs."""
        self._count(grpc.StatusCode.OK)
        return pb.ServerLiveResponse(live=True)

    async def server_ready(self, request: Any, context: aio.ServicerContext) -> Any:
        """ServerReady: false while starting or draining."""
        self._count(grpc.StatusCode.OK)
        return pb.ServerReadyResponse(ready=self.plane.ready and not self.plane.draining)

    async def model_ready(self, request: Any, context: aio.ServicerContext) -> Any:
        """ModelReady: NOT_FOUND for a model or version not served, else the server's readiness."""
        try:
            mt = self.plane.model_table(request.name)
            if request.version:
                self.plane.choose(mt, None, None, request.version)
        except RouterError as e:
            await self._fail(context, e, "ModelReady")
        self._count(grpc.StatusCode.OK)
        return pb.ModelReadyResponse(ready=self.plane.ready and not self.plane.draining)

    async def server_metadata(self, request: Any, context: aio.ServicerContext) -> Any:
        """ServerMetadata: name, version, extensions."""
        self._count(grpc.StatusCode.OK)
        return pb.ServerMetadataResponse(name="modelgate-router", version=__version__, extensions=EXTENSIONS)

    async def model_metadata(self, request: Any, context: aio.ServicerContext) -> Any:
        """ModelMetadata: the primary variant's signature, or a given version's."""
        try:
            mt = self.plane.model_table(request.name)
            if request.version:
                v = self.plane.choose(mt, None, None, request.version)
                doc = v.model.metadata(mt.name)
                doc["versions"] = [v.version]
            else:
                doc = mt.primary().model.metadata(mt.name)
            resp = model_metadata(doc)
        except RouterError as e:
            await self._fail(context, e, "ModelMetadata")
        self._count(grpc.StatusCode.OK)
        return resp

    async def model_infer(self, request: Any, context: aio.ServicerContext) -> Any:
        """ModelInfer: route, score, record; outputs in ``raw_output_contents``."""
        app = self.app
        app.in_flight += 1
        try:
            resp, md = self._infer(request, context)
        except Exception as e:
            await self._fail(context, e, "ModelInfer")
        finally:
            app.in_flight -= 1
        await context.send_initial_metadata(md)
        self._count(grpc.StatusCode.OK)
        return resp

    def _infer(self, request: Any, context: aio.ServicerContext) -> tuple[Any, tuple[tuple[str, str], ...]]:
        plane = self.plane
        if not plane.ready:
            raise NotReady("router is not ready")
        md: dict[str, Any] = dict(context.invocation_metadata() or ())
        pin = md.get("x-variant")
        if pin is not None:
            key = self.app.keys.identify(_bytes(md.get("authorization")))
            plane.check_pin(key.roles if key else None)
        request_id = request.id or md.get("x-request-id") or plane.next_request_id()
        request_id = str(request_id)[:128]
        unit = md.get("x-unit-id")
        consent = grpc_consent(md.get("x-consent"), request.parameters, plane.settings.consent_default)
        name = request.model_name
        if not name:
            raise NotFound("ModelInferRequest names no model (model_name is empty)")
        v, outputs, _ = plane.score(
            name,
            grpc_feeds,
            request,
            _bytes(unit),
            pin,
            consent,
            request_id,
            request.model_version or None,
        )
        resp = infer_response(name, v.version, request_id, v.model, outputs, request.outputs)
        return resp, (("x-variant", v.name), ("x-model-version", v.version), ("x-request-id", request_id))

    def handler(self) -> grpc.GenericRpcHandler:
        """The generic handler of the six RPCs."""

        def unary(fn: Callable[[Any, Any], Awaitable[Any]], req: Any, resp: Any) -> grpc.RpcMethodHandler:
            return grpc.unary_unary_rpc_method_handler(
                fn, request_deserializer=req.FromString, response_serializer=resp.SerializeToString
            )

        return grpc.method_handlers_generic_handler(
            SERVICE,
            {
                "ServerLive": unary(self.server_live, pb.ServerLiveRequest, pb.ServerLiveResponse),
                "ServerReady": unary(self.server_ready, pb.ServerReadyRequest, pb.ServerReadyResponse),
                "ModelReady": unary(self.model_ready, pb.ModelReadyRequest, pb.ModelReadyResponse),
                "ServerMetadata": unary(
                    self.server_metadata, pb.ServerMetadataRequest, pb.ServerMetadataResponse
                ),
                "ModelMetadata": unary(
                    self.model_metadata, pb.ModelMetadataRequest, pb.ModelMetadataResponse
                ),
                "ModelInfer": unary(self.model_infer, pb.ModelInferRequest, pb.ModelInferResponse),
            },
        )


def _bytes(value: Any) -> bytes | None:
    if value is None:
        return None
    return value if isinstance(value, bytes) else str(value).encode("utf-8")


class GrpcServer:
    """A started ``grpc.aio`` server with its service (``start_grpc`` builds it).

    Args:
        server: the aio server.
        service: the servicer.
        port: the bound port.
    """

    def __init__(self, server: aio.Server, service: InferenceService, port: int) -> None:
        self.server = server
        self.service = service
        self.port = port

    def metric_lines(self) -> list[str]:
        """The ``router_grpc_responses_total`` lines of ``/metrics``."""
        lines = [
            "# HELP router_grpc_responses_total gRPC answers by status code.",
            "# TYPE router_grpc_responses_total counter",
        ]
        for code, n in sorted(self.service.responses.items()):
            lines.append(f'router_grpc_responses_total{{code="{code}"}} {n}')
        return lines

    async def stop(self, grace: float) -> None:
        """Refuse new RPCs at once; give those in flight up to ``grace`` seconds.

        Args:
            grace: seconds.
        """
        await self.server.stop(grace)
        log.info("gRPC server on port %d stopped", self.port)


async def start_grpc(app: RouterApp) -> GrpcServer:
    """Start the gRPC server on ``settings.host:settings.grpc_port`` on the running loop.

    With one worker the port is bound exclusively (a port in use fails the start); with several,
    every worker binds it with ``SO_REUSEPORT`` and the kernel spreads connections.

    Args:
        app: the router app.

    Returns:
        The started server.

    Raises:
        RouterError: the port cannot be bound.
    """
    s = app.settings
    options = [
        ("grpc.max_receive_message_length", s.max_body_bytes),
        ("grpc.max_send_message_length", -1),
        ("grpc.so_reuseport", int(s.workers > 1)),
    ]
    server = aio.server(options=options)
    service = InferenceService(app)
    server.add_generic_rpc_handlers((service.handler(),))
    address = f"{s.host}:{s.grpc_port}"
    try:
        if s.ssl_certfile and s.ssl_keyfile:
            creds = grpc.ssl_server_credentials([(s.ssl_keyfile.read_bytes(), s.ssl_certfile.read_bytes())])
            port = server.add_secure_port(address, creds)
        else:
            port = server.add_insecure_port(address)
    except RuntimeError as e:
        raise RouterError(f"gRPC cannot listen on {address}: {e}") from e
    if port == 0:
        raise RouterError(f"gRPC cannot listen on {address}")
    await server.start()
    log.info("gRPC (OIP v2) listening on %s", address)
    return GrpcServer(server, service, port)
