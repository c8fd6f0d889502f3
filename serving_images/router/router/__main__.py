"""Command line: ``python -m router --routes ROUTES.yaml --host 127.0.0.1 --port 8500 [--workers N]``."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from pydantic import ValidationError


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, validate settings, serve.

    Args:
        argv: arguments (defaults to ``sys.argv[1:]``).

    Returns:
        The exit code.
    """
    p = argparse.ArgumentParser(prog="python -m router", description="modelgate ONNX router")
    p.add_argument("--routes", help="routes YAML file (env ROUTER_ROUTES)")
    p.add_argument("--host", help="bind address (env ROUTER_HOST, default 127.0.0.1)")
    p.add_argument("--port", type=int, help="port (env ROUTER_PORT, default 8500)")
    p.add_argument("--grpc-port", type=int, help="OIP v2 gRPC port (env ROUTER_GRPC_PORT, default off)")
    p.add_argument("--workers", type=int, help="worker processes (env ROUTER_WORKERS, default 1)")
    p.add_argument("--state-dir", help="runtime state directory (env ROUTER_STATE_DIR)")
    p.add_argument("--events-root", help="event files root, path or fsspec URL (env ROUTER_EVENTS_ROOT)")
    p.add_argument("--ssl-certfile", help="TLS certificate (env ROUTER_SSL_CERTFILE)")
    p.add_argument("--ssl-keyfile", help="TLS key (env ROUTER_SSL_KEYFILE)")
    p.add_argument("--log-level", help="debug, info, warning, error (env ROUTER_LOG_LEVEL)")
    args = p.parse_args(argv)
    # Command-line values become environment variables so every worker process sees them.
    for key, value in vars(args).items():
        if value is not None:
            os.environ[f"ROUTER_{key.upper()}"] = str(value)

    from router.settings import RouterSettings

    try:
        settings = RouterSettings()
    except ValidationError as e:
        print(f"invalid router settings:\n{e}", file=sys.stderr)
        return 2
    if settings.routes is not None and not settings.routes.is_file():
        print(f"routes file {settings.routes} does not exist", file=sys.stderr)
        return 2
    if bool(settings.ssl_certfile) != bool(settings.ssl_keyfile):
        print("TLS needs both --ssl-certfile and --ssl-keyfile", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s [%(process)d] %(message)s",
    )
    from router.server import run

    run(settings)
    return 0


if __name__ == "__main__":
    sys.exit(main())
