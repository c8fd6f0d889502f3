"""Process lifecycle: uvicorn with uvloop/httptools, graceful drain on SIGTERM, optional workers and TLS."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
from types import FrameType

import uvicorn

from router.app import RouterApp, create_app
from router.auth import KeyRing
from router.dataplane import DataPlane
from router.httpproto import CoalescingHttpToolsProtocol
from router.settings import RouterSettings

log = logging.getLogger(__name__)

_APPS: list[RouterApp] = []


def app_from_env() -> RouterApp:
    """Build the app from ``ROUTER_*`` settings (the uvicorn factory, called once per worker).

    Returns:
        The app.
    """
    settings = RouterSettings()
    app = create_app(DataPlane(settings), KeyRing(settings))
    _APPS.append(app)
    return app


SETTLE_SECONDS = 0.25
"""The last part of the grace period, answered keep-alive so that no client is reconnecting (and no
connection waits in the accept queue, where closing the listener would reset it) when the listener
closes."""


class RouterServer(uvicorn.Server):
    """uvicorn's server with a drain that loses nothing on SIGTERM.

    The sequence (``docs/router.md``): readiness turns false at once; for ``grace`` seconds the router
    keeps accepting and answering, every answer carrying ``Connection: close`` so that clients open
    new connections (to the pods the load balancer now prefers); for the last ``SETTLE_SECONDS`` of the
    grace answers keep their connection, then the listener closes; answers on the connections still
    open carry ``Connection: close`` again, and requests in flight get up to ``drain_timeout`` seconds;
    then the lifespan shutdown flushes the events of every answered request and the process exits 0.
    """

    def __init__(self, config: uvicorn.Config, drain_timeout: float, grace: float = 0.0) -> None:
        super().__init__(config)
        self.drain_timeout = drain_timeout
        self.grace = grace
        self._loop: asyncio.AbstractEventLoop | None = None
        self._draining = False

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        """Serve until drained."""
        self._loop = asyncio.get_running_loop()
        await super().serve(sockets)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        """Start the drain on the first signal; a second SIGINT forces the exit."""
        if self._draining or self._loop is None:
            if sig == signal.SIGINT:
                self.force_exit = True
            self.should_exit = True
            return
        self._draining = True
        for app in _APPS:
            app.plane.draining = True
            app.plane.close_connections = self.grace > SETTLE_SECONDS
        self._loop.call_soon_threadsafe(lambda: asyncio.ensure_future(self._drain()))

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        if self.grace > 0:
            log.info("draining: readiness false; still answering for %.1f s", self.grace)
            await asyncio.sleep(max(0.0, self.grace - SETTLE_SECONDS))
            _set_close(False)
            await asyncio.sleep(min(self.grace, SETTLE_SECONDS))
        for server in getattr(self, "servers", []):
            server.close()
        _set_close(True)
        log.info(
            "listener closed; waiting up to %.1f s for %d open connections",
            self.drain_timeout,
            len(self.server_state.connections),
        )
        deadline = loop.time() + self.drain_timeout
        while self.server_state.connections and loop.time() < deadline:
            await asyncio.sleep(0.05)
        self.should_exit = True


def _set_close(on: bool) -> None:
    for app in _APPS:
        app.plane.close_connections = on


def run(settings: RouterSettings) -> None:
    """Serve with the given settings (already exported to the environment for the workers).

    Args:
        settings: the router settings.
    """
    ssl = {}
    if settings.ssl_certfile and settings.ssl_keyfile:
        ssl = {"ssl_certfile": str(settings.ssl_certfile), "ssl_keyfile": str(settings.ssl_keyfile)}
    config = uvicorn.Config(
        "router.server:app_from_env",
        factory=True,
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http=CoalescingHttpToolsProtocol,
        ws="none",
        server_header=False,
        proxy_headers=False,  # nothing reads the client address; saves a middleware call per request
        lifespan="on",
        access_log=False,
        log_level=settings.log_level,
        workers=settings.workers,
        timeout_graceful_shutdown=int(settings.drain_timeout_seconds) + 5,
        **ssl,  # type: ignore[arg-type]
    )
    grace = settings.shutdown_grace_seconds
    if settings.workers > 1:
        _supervise(config, settings.drain_timeout_seconds, settings.workers, grace)
    else:
        RouterServer(config, settings.drain_timeout_seconds, grace).run()


def _worker(
    config: uvicorn.Config, drain_timeout: float, grace: float, sockets: list[socket.socket] | None = None
) -> None:
    RouterServer(config, drain_timeout, grace).run(sockets)


def _supervise(config: uvicorn.Config, drain_timeout: float, workers: int, grace: float) -> None:
    """Run ``workers`` processes on one shared socket; restart a worker that dies; on SIGTERM or
    SIGINT pass SIGTERM on (each worker drains) and wait for all of them.
    """
    import functools
    import threading

    from uvicorn._subprocess import get_subprocess

    sock = config.bind_socket()
    target = functools.partial(_worker, config, drain_timeout, grace)
    procs = [get_subprocess(config=config, target=target, sockets=[sock]) for _ in range(workers)]
    for p in procs:
        p.start()
    stopping = threading.Event()

    def _stop(sig: int, frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    while not stopping.wait(0.5):
        for i, p in enumerate(procs):
            if not p.is_alive():
                log.warning("worker %s exited with %s; starting a new one", p.pid, p.exitcode)
                procs[i] = get_subprocess(config=config, target=target, sockets=[sock])
                procs[i].start()
    for p in procs:
        if p.pid is not None and p.is_alive():
            os.kill(p.pid, signal.SIGTERM)
    for p in procs:
        p.join(grace + drain_timeout + 30)
    sock.close()
