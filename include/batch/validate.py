"""Validate scored partitions with the great-expectations checkpoint kept as data in ``validation/``.

``validation/batch_outputs.checkpoint.json`` names the suite (``batch_outputs.suite.json``) and the
result format; the suite's row-count expectation takes the input's row count as the
``expected_rows`` parameter, read from the partition's manifest. Runs in an ephemeral context
(nothing is written into ``validation/``).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from include.batch.errors import BatchError

log = logging.getLogger(__name__)

VALIDATION_DIR = Path(__file__).resolve().parents[2] / "validation"
DEFAULT_CHECKPOINT = VALIDATION_DIR / "batch_outputs.checkpoint.json"


@dataclass(frozen=True)
class PartitionVerdict:
    """The checkpoint's verdict on one scored partition.

    Attributes:
        success: every expectation held.
        failed: ``"<expectation type>(<column>)"`` of each failed expectation.
    """

    success: bool
    failed: tuple[str, ...]


class OutputValidator:
    """Runs the checkpoint on one partition at a time (build once, validate many)."""

    def __init__(self, checkpoint_path: Path = DEFAULT_CHECKPOINT) -> None:
        """Load the checkpoint and its suite.

        Args:
            checkpoint_path: the checkpoint JSON (its suite path is relative to it).

        Raises:
            BatchError: the checkpoint or suite is unreadable or malformed.
        """
        import great_expectations as gx

        try:
            cp_doc: dict[str, Any] = json.loads(Path(checkpoint_path).read_text())
            (vd_doc,) = cp_doc["validation_definitions"]
            suite_doc = json.loads((Path(checkpoint_path).parent / vd_doc["suite"]).read_text())
            data = vd_doc["data"]
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise BatchError(f"{checkpoint_path}: not a usable checkpoint ({e})") from e
        from great_expectations.data_context.types.base import ProgressBarsConfig

        ctx = gx.get_context(mode="ephemeral")
        ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
        asset = ctx.data_sources.add_pandas(data["datasource"]).add_dataframe_asset(data["asset"])
        batch_def = asset.add_batch_definition_whole_dataframe(data["batch_definition"])
        suite = ctx.suites.add(gx.ExpectationSuite(**suite_doc))
        vd = ctx.validation_definitions.add(
            gx.ValidationDefinition(name=vd_doc["name"], data=batch_def, suite=suite)
        )
        self._checkpoint = ctx.checkpoints.add(
            gx.Checkpoint(
                name=cp_doc["name"],
                validation_definitions=[vd],
                actions=[],
                result_format=cp_doc["result_format"],
            )
        )

    def validate(self, parquet_path: str, expected_rows: int) -> PartitionVerdict:
        """Validate one scored partition.

        Args:
            parquet_path: the output Parquet file.
            expected_rows: rows of the input partition.

        Returns:
            The verdict.

        Raises:
            BatchError: the file cannot be read.
        """
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            df = pq.read_table(parquet_path).to_pandas()
        except (OSError, pa.ArrowException) as e:
            raise BatchError(f"{parquet_path}: cannot read the scored partition ({e})") from e
        result = self._checkpoint.run(
            batch_parameters={"dataframe": df}, expectation_parameters={"expected_rows": expected_rows}
        )
        failed: list[str] = []
        for run_result in result.run_results.values():
            for r in run_result.results:
                if not r.success:
                    cfg = r.expectation_config
                    if cfg is None:
                        failed.append("unknown expectation")
                        continue
                    col = cfg.kwargs.get("column")
                    failed.append(f"{cfg.type}({col})" if col else str(cfg.type))
        return PartitionVerdict(bool(result.success), tuple(failed))
