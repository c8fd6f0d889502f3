"""``python -m modelgate_dev.traffic``: send synthetic traffic to the router and print the report as JSON."""

from __future__ import annotations

import argparse
import json
import logging
import sys

from include.errors import ModelgateError


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, send traffic, print the report.

    Args:
        argv: command-line arguments (default ``sys.argv[1:]``).

    Returns:
        The exit status: 0 sent, 2 bad arguments or unreachable router.
    """
    p = argparse.ArgumentParser(prog="python -m modelgate_dev.traffic", description=__doc__)
    p.add_argument(
        "--router-url",
        action="append",
        help="router replica base URL; repeat it to spread requests over replicas (default http://127.0.0.1:8500)",
    )
    p.add_argument("--model", required=True, help="model name in /v2/models/{model}/infer")
    p.add_argument("--spec", required=True, help="feature spec JSON (include.synthetic)")
    p.add_argument("--rate", type=float, default=50.0, help="requests per second")
    p.add_argument("--duration", type=float, default=30.0, help="seconds")
    p.add_argument("--max-requests", type=int, default=None)
    p.add_argument("--units", type=int, default=1000, help="size of the unit-id population")
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--consent-rate", type=float, default=0.9, help="share of units sending X-Consent: true")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    from include.synthetic.spec import FeatureSpec
    from modelgate_dev.traffic.generator import TrafficConfig, run_traffic

    try:
        urls = a.router_url or ["http://127.0.0.1:8500"]
        cfg = TrafficConfig(
            urls[0],
            a.model,
            a.rate,
            a.duration,
            a.max_requests,
            a.units,
            concurrency=a.concurrency,
            seed=a.seed,
            consent_rate=a.consent_rate,
            replica_urls=tuple(urls[1:]),
        )
        report = run_traffic(cfg, FeatureSpec.from_json(a.spec))
    except ModelgateError as e:
        print(f"error: {e.message}", file=sys.stderr)
        return 2
    print(json.dumps(report.to_dict(), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
