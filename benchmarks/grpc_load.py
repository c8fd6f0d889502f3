"""A closed-loop gRPC load generator for ``benchmarks/protocols.py`` (the gRPC counterpart of ``wrk``).

``CONNECTIONS`` channels, each its own HTTP/2 connection with one call in flight (as ``wrk -c`` keeps one
request in flight per connection), send the same pre-serialized ``ModelInferRequest`` to
``/inference.GRPCInferenceService/ModelInfer`` with metadata ``x-unit-id`` cycling over 10,000 units.
Bytes go out and come back unparsed, so the client spends no time in protobuf. Prints one JSON line:
answered (OK), errors by code, req/s, p50/p99 in ms.

Usage: ``python benchmarks/grpc_load.py TARGET REQUEST_FILE SECONDS CONNECTIONS``
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

import grpc
from grpc import aio

METHOD = "/inference.GRPCInferenceService/ModelInfer"


async def run(target: str, body: bytes, seconds: float, connections: int) -> dict[str, object]:
    options = [("grpc.use_local_subchannel_pool", 1), ("grpc.max_receive_message_length", -1)]
    channels = [aio.insecure_channel(target, options=options) for _ in range(connections)]
    for ch in channels:
        await ch.channel_ready()
    latencies: list[float] = []
    errors: dict[str, int] = {}
    end = time.perf_counter() + seconds
    counter = 0

    async def worker(ch: aio.Channel) -> None:
        nonlocal counter
        call = ch.unary_unary(METHOD)
        perf = time.perf_counter
        while True:
            t0 = perf()
            if t0 >= end:
                return
            counter += 1
            try:
                await call(body, metadata=(("x-unit-id", f"unit-{counter % 10000}"),))
                latencies.append(perf() - t0)
            except grpc.RpcError as e:
                code = e.code().name if e.code() else "UNKNOWN"
                errors[code] = errors.get(code, 0) + 1

    t_start = time.perf_counter()
    await asyncio.gather(*(worker(ch) for ch in channels))
    elapsed = time.perf_counter() - t_start
    for ch in channels:
        await ch.close()
    latencies.sort()

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p / 100 * len(latencies)))] * 1000 if latencies else 0.0

    return {
        "answered": len(latencies),
        "errors": errors,
        "rps": len(latencies) / elapsed,
        "p50": pct(50),
        "p99": pct(99),
        "p999": pct(99.9),
    }


def main() -> int:
    target, request_file, seconds, connections = sys.argv[1:5]
    body = Path(request_file).read_bytes()
    try:
        import uvloop

        result = uvloop.run(run(target, body, float(seconds), int(connections)))
    except ImportError:
        result = asyncio.run(run(target, body, float(seconds), int(connections)))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
