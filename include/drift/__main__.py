"""``python -m include.drift --reference REF --current CUR [--spec SPEC] [--alpha 0.01]``.

Prints one JSON object (see :func:`include.drift.detect.detect`); bad input exits 2 with a one-line
message on stderr.
"""

from __future__ import annotations

import argparse
import json
import sys

from include.drift.detect import DEFAULT_ALPHA, detect, read_frame
from include.drift.errors import DriftError


def main(argv: list[str] | None = None) -> int:
    """Run the CLI.

    Args:
        argv: arguments (default ``sys.argv[1:]``).

    Returns:
        The exit status: 0 on success, 2 on bad input.
    """
    parser = argparse.ArgumentParser(prog="python -m include.drift", description=__doc__)
    parser.add_argument("--reference", required=True, help="Parquet file of reference rows")
    parser.add_argument("--current", required=True, help="Parquet file of current rows")
    parser.add_argument("--spec", help="feature spec JSON (include.synthetic) naming the features")
    parser.add_argument("--alpha", type=float, default=DEFAULT_ALPHA, help="false-alarm level")
    args = parser.parse_args(argv)
    try:
        spec = None
        if args.spec:
            from include.synthetic import FeatureSpec
            from include.synthetic.errors import SyntheticError

            try:
                spec = FeatureSpec.from_json(args.spec)
            except (SyntheticError, OSError, ValueError) as e:
                raise DriftError(f"feature spec {args.spec} cannot be read: {e}") from e
        result = detect(
            read_frame(args.reference, "reference"), read_frame(args.current, "current"), spec, args.alpha
        )
    except DriftError as e:
        print(f"error: {e.message}", file=sys.stderr)
        return 2
    print(json.dumps(result, allow_nan=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
