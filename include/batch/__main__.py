"""``python -m include.batch`` / ``modelgate batch``: score Parquet partitions with an ONNX model.

Exit codes: 0 done (scored or skipped), 2 bad arguments, 3 bad input data (not worth a retry),
4 model not found, not verifiable or not loadable, 1 anything else (e.g. an unreachable registry).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_BAD_INPUT = 3
EXIT_BAD_MODEL = 4


def _names(value: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in value.split(",") if n.strip())
    if not names:
        raise argparse.ArgumentTypeError("expected a comma-separated list of column names")
    return names


def _positive(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {value!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {n}")
    return n


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of the batch job."""
    p = argparse.ArgumentParser(
        prog="modelgate batch",
        description="Score Parquet partitions with an ONNX model; write keys + predictions and a manifest.",
    )
    p.add_argument(
        "--model-uri",
        required=True,
        help="models:/name@alias, models:/name/N, a .onnx file or an MLflow model dir",
    )
    p.add_argument(
        "--input", required=True, help="a Parquet file or a folder of *.parquet partitions (path or URL)"
    )
    p.add_argument("--output", required=True, help="output folder (path or URL)")
    p.add_argument(
        "--providers",
        choices=["auto", "cpu", "cuda"],
        default="auto",
        help="auto: CUDA when present, else CPU",
    )
    p.add_argument(
        "--batch-rows", type=_positive, default=131_072, help="rows per record batch (default 131072)"
    )
    g = p.add_mutually_exclusive_group()
    g.add_argument("--features", type=_names, help="feature columns in the model's order, comma-separated")
    g.add_argument(
        "--feature-spec", type=Path, help="feature spec JSON; its feature names are the feature columns"
    )
    p.add_argument("--keys", type=_names, help="columns to carry through (default: every non-feature column)")
    p.add_argument("--force", action="store_true", help="score again even when the manifest is current")
    p.add_argument("--tracking-uri", help="MLflow server for models:/ URIs (default: MODELGATE_TRACKING_URI)")
    bar = p.add_mutually_exclusive_group()
    bar.add_argument(
        "--progress", dest="progress", action="store_true", default=None, help="always show a progress bar"
    )
    bar.add_argument(
        "--no-progress", dest="progress", action="store_false", help="log lines instead of a bar"
    )
    return p


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the batch job from command-line arguments.

    Args:
        argv: arguments without the program name (default: ``sys.argv[1:]``).

    Returns:
        The exit code (see the module docstring).
    """
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s", stream=sys.stderr
    )
    signal.signal(signal.SIGTERM, _terminate)  # run cleanup (temp files) on a pod's or worker's SIGTERM

    from include.batch.errors import BatchError, BatchInputError, BatchModelError
    from include.batch.job import BatchConfig, run_batch
    from include.errors import ModelgateError
    from include.registry.credentials import role_identity, use_identity
    from include.registry.errors import RegistryError

    if not os.environ.get("MLFLOW_TRACKING_USERNAME"):  # a pod gets MLflow's variables from its Secret
        use_identity(role_identity("batch"))  # read-only on the registry

    config = BatchConfig(
        model_uri=args.model_uri,
        input=args.input,
        output=args.output,
        providers=args.providers,
        batch_rows=args.batch_rows,
        features=args.features,
        feature_spec=args.feature_spec,
        keys=args.keys,
        force=args.force,
        tracking_uri=args.tracking_uri,
        progress=args.progress,
    )
    try:
        results = run_batch(config)
    except BatchInputError as e:
        print(f"modelgate batch: error: {e.message}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except (BatchModelError, RegistryError) as e:
        print(f"modelgate batch: error: {e.message}", file=sys.stderr)
        return EXIT_BAD_MODEL
    except (BatchError, ModelgateError) as e:
        print(f"modelgate batch: error: {e.message}", file=sys.stderr)
        return EXIT_ERROR
    for r in results:
        print(
            json.dumps(
                {"input": r.input, "status": r.status, "rows": r.rows, "rows_per_s": round(r.rows_per_s)}
            )
        )
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
