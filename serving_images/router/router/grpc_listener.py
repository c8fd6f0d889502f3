"""The listening side of the router's own HTTP/2 gRPC server: connections, routes, and the drain.

``router.grpc_h2`` speaks one connection; this holds what its connections share (the service, the
``:path`` routes, the message limit) and stops them on SIGTERM: GOAWAY first, so calls already taken
finish and later ones are refused (a client may retry those elsewhere), then close.
"""

from __future__ import annotations

import asyncio

from router.grpc_h2 import PREFIX, H2GrpcProtocol
from router.grpc_service import InferenceService


class H2GrpcServer:
    """The listening side: connections, and the drain that refuses new calls and lets open ones finish.

    Args:
        service: the transport-free service.
        max_message: the largest request message in bytes.
    """

    def __init__(self, service: InferenceService, max_message: int) -> None:
        self.service = service
        self.max_message = max_message
        self.routes = {PREFIX + rpc: (rpc, *entry) for rpc, entry in service.methods.items()}
        """``:path`` to (RPC name, request class, core)."""
        self.connections: set[H2GrpcProtocol] = set()
        self.server: asyncio.Server | None = None

    def protocol(self) -> H2GrpcProtocol:
        """A protocol for a new connection (the loop's protocol factory)."""
        return H2GrpcProtocol(self)

    async def stop(self, grace: float) -> None:
        """Close the listener, send GOAWAY on every connection, wait up to ``grace`` seconds for the calls
        in flight, then close the connections.

        Args:
            grace: seconds.
        """
        if self.server is not None:
            self.server.close()
        for c in list(self.connections):
            c.goaway()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        while any(not c.idle for c in self.connections) and loop.time() < deadline:
            await asyncio.sleep(0.02)
        for c in list(self.connections):
            if c.transport is not None:
                c.transport.close()
