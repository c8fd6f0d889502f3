"""On a machine with the CUDA provider, the job scores on the GPU (IO binding) like it does on CPU."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pyarrow.parquet as pq
import pytest
from batch_support import write_partition

from include.batch.job import BatchConfig, run_batch

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(
        "CUDAExecutionProvider" not in ort.get_available_providers(), reason="no CUDA execution provider here"
    ),
]


def test_cuda_provider_scores_the_same_as_cpu(tmp_path: Path, classifier: Path) -> None:
    part = write_partition(tmp_path / "in" / "part-0.parquet", 5000)
    run_batch(BatchConfig(str(classifier), str(part), str(tmp_path / "cpu"), providers="cpu", progress=False))
    res = run_batch(
        BatchConfig(str(classifier), str(part), str(tmp_path / "gpu"), providers="cuda", progress=False)
    )
    assert res[0].status == "scored"
    cpu = pq.read_table(tmp_path / "cpu" / "part-0.parquet")
    gpu = pq.read_table(tmp_path / "gpu" / "part-0.parquet")
    np.testing.assert_allclose(
        gpu.column("probabilities_1").to_numpy(), cpu.column("probabilities_1").to_numpy(), rtol=1e-5
    )
    import json

    assert (
        json.loads((tmp_path / "gpu" / "part-0.manifest.json").read_text())["providers"][0]
        == "CUDAExecutionProvider"
    )
