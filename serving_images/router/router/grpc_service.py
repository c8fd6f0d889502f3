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
from collections.abc import Awaitable, Callable, Mapping
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


_OK = grpc.StatusCode.OK
Metadata = tuple[tuple[str, str], ...]
Core = Callable[[Any, "Mapping[str, Any]"], tuple[Any, Metadata]]
Stopper = Callable[[float], Awaitable[Any]]


def status_of(e: Exception, rpc: str) -> tuple[grpc.StatusCode, str]:
    """The gRPC status and message that answer an exception of an RPC (a router error maps by its HTTP
    status; anything else is logged and answers INTERNAL, never a traceback on the wire).

    Args:
        e: the exception.
        rpc: the RPC's name (for the log).

    Returns:
        The status code and message.
    """
    if isinstance(e, RouterError):
        return _CODES.get(e.status, grpc.StatusCode.INTERNAL), e.message
    log.exception("unhandled error in gRPC %s", rpc, exc_info=e)
    return grpc.StatusCode.INTERNAL, f"internal error: {type(e).__name__}"


class InferenceService:
    """The six OIP v2 RPCs, translated onto the router app's data plane, free of any transport.

    ``methods`` maps each RPC name to its request class and a synchronous core ``(request, metadata) ->
    (response, answer metadata)`` that raises ``RouterError`` (the response is a message, or for
    ``ModelInfer`` its serialised bytes); the HTTP/2 server (``router.grpc_h2``) and
    the ``grpc.aio`` adapter (``handler``) both call them.

    Args:
        app: the router app (its plane, keys and counters).
    """

    def __init__(self, app: RouterApp) -> None:
        self.app = app
        self.plane = app.plane
        self.responses: dict[str, int] = {}
        """gRPC answers by status code name (``/metrics``: ``router_grpc_responses_total``)."""
        self.methods: dict[str, tuple[Any, Core]] = {
            "ServerLive": (pb.ServerLiveRequest, self.server_live),
            "ServerReady": (pb.ServerReadyRequest, self.server_ready),
            "ModelReady": (pb.ModelReadyRequest, self.model_ready),
            "ServerMetadata": (pb.ServerMetadataRequest, self.server_metadata),
            "ModelMetadata": (pb.ModelMetadataRequest, self.model_metadata),
            "ModelInfer": (pb.ModelInferRequest, self.model_infer),
        }

    def count(self, code: grpc.StatusCode) -> None:
        """Count one answer by its status code.

        Args:
            code: the status code.
        """
        name = "OK" if code is _OK else code.name  # an enum's .name is a Python-level property
        self.responses[name] = self.responses.get(name, 0) + 1

    def server_live(self, request: Any, md: Mapping[str, Any]) -> tuple[Any, Metadata]:
        """ServerLive: true while the process runs."""
        return pb.ServerLiveResponse(live=True), ()

    def server_ready(self, request: Any, md: Mapping[str, Any]) -> tuple[Any, Metadata]:
        """ServerReady: false while starting or draining."""
        return pb.ServerReadyResponse(ready=self.plane.ready and not self.plane.draining), ()

    def model_ready(self, request: Any, md: Mapping[str, Any]) -> tuple[Any, Metadata]:
        """ModelReady: NOT_FOUND for a model or version not served, else the server's readiness."""
        mt = self.plane.model_table(request.name)
        if request.version:
            self.plane.choose(mt, None, None, request.version)
        return pb.ModelReadyResponse(ready=self.plane.ready and not self.plane.draining), ()

    def server_metadata(self, request: Any, md: Mapping[str, Any]) -> tuple[Any, Metadata]:
        """ServerMetadata: name, version, extensions."""
        resp = pb.ServerMetadataResponse(name="modelgate-router", version=__version__, extensions=EXTENSIONS)
        return resp, ()

    def model_metadata(self, request: Any, md: Mapping[str, Any]) -> tuple[Any, Metadata]:
        """ModelMetadata: the primary variant's signature, or a given version's."""
        mt = self.plane.model_table(request.name)
        if request.version:
            v = self.plane.choose(mt, None, None, request.version)
            doc = v.model.metadata(mt.name)
            doc["versions"] = [v.version]
        else:
            doc = mt.primary().model.metadata(mt.name)
        return model_metadata(doc), ()

    def model_infer(self, request: Any, md: Mapping[str, Any]) -> tuple[Any, Metadata]:
        """ModelInfer: route, score, record; outputs in ``raw_output_contents``."""
        app = self.app
        app.in_flight += 1
        try:
            return self._infer(request, md)
        finally:
            app.in_flight -= 1

    def _infer(self, request: Any, md: Mapping[str, Any]) -> tuple[Any, Metadata]:
        plane = self.plane
        if not plane.ready:
            raise NotReady("router is not ready")
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
        """The ``grpc.aio`` generic handler of the six RPCs (``ROUTER_GRPC_SERVER=grpcio``)."""

        def unary(rpc: str, req: Any, core: Core) -> grpc.RpcMethodHandler:
            async def call(request: Any, context: aio.ServicerContext) -> Any:
                try:
                    resp, md = core(request, dict(context.invocation_metadata() or ()))
                except Exception as e:
                    code, message = status_of(e, rpc)
                    self.count(code)
                    await context.abort(code, message)
                if md:
                    await context.send_initial_metadata(md)
                self.count(grpc.StatusCode.OK)
                return resp

            return grpc.unary_unary_rpc_method_handler(
                call, request_deserializer=req.FromString, response_serializer=_serialize
            )

        return grpc.method_handlers_generic_handler(
            SERVICE, {rpc: unary(rpc, req, core) for rpc, (req, core) in self.methods.items()}
        )


def _serialize(message: Any) -> bytes:
    """A response message's bytes (``ModelInfer`` answers come serialised already)."""
    return message if type(message) is bytes else message.SerializeToString()


def _bytes(value: Any) -> bytes | None:
    if value is None:
        return None
    return value if isinstance(value, bytes) else str(value).encode("utf-8")


class GrpcServer:
    """A started gRPC server with its service (``start_grpc`` builds it).

    Args:
        stopper: ``await stopper(grace)`` refuses new RPCs and gives those in flight ``grace`` seconds.
        service: the servicer.
        port: the bound port.
    """

    def __init__(self, stopper: Stopper, service: InferenceService, port: int) -> None:
        self._stopper = stopper
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
        await self._stopper(grace)
        log.info("gRPC server on port %d stopped", self.port)


async def start_grpc(app: RouterApp) -> GrpcServer:
    """Start the gRPC server on ``settings.host:settings.grpc_port`` on the running loop.

    ``settings.grpc_server`` picks the implementation: ``native`` (``router.grpc_h2``, HTTP/2 in the
    router's own protocol) or ``grpcio`` (``grpc.aio``). With one worker the port is bound exclusively
    (a port in use fails the start); with several, every worker binds it with ``SO_REUSEPORT`` and the
    kernel spreads connections.

    Args:
        app: the router app.

    Returns:
        The started server.

    Raises:
        RouterError: the port cannot be bound.
    """
    s = app.settings
    service = InferenceService(app)
    address = f"{s.host}:{s.grpc_port}"
    if s.grpc_server == "native":
        stopper, port = await _start_native(app, service)
    else:
        stopper, port = await _start_grpcio(app, service)
    log.info("gRPC (OIP v2, %s) listening on %s", s.grpc_server, address)
    return GrpcServer(stopper, service, port)


async def _start_native(app: RouterApp, service: InferenceService) -> tuple[Stopper, int]:
    import asyncio
    import ssl

    from router.grpc_listener import H2GrpcServer

    s = app.settings
    h2 = H2GrpcServer(service, s.max_body_bytes)
    context = None
    if s.ssl_certfile and s.ssl_keyfile:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(str(s.ssl_certfile), str(s.ssl_keyfile))
        context.set_alpn_protocols(["h2"])
    try:
        h2.server = await asyncio.get_running_loop().create_server(
            h2.protocol, s.host, s.grpc_port, ssl=context, reuse_port=s.workers > 1, backlog=2048
        )
    except OSError as e:
        raise RouterError(f"gRPC cannot listen on {s.host}:{s.grpc_port}: {e}") from e
    return h2.stop, int(s.grpc_port or 0)


async def _start_grpcio(app: RouterApp, service: InferenceService) -> tuple[Stopper, int]:
    s = app.settings
    options = [
        ("grpc.max_receive_message_length", s.max_body_bytes),
        ("grpc.max_send_message_length", -1),
        ("grpc.so_reuseport", int(s.workers > 1)),
    ]
    server = aio.server(options=options)
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
    return server.stop, port
