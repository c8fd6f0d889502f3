"""The job resolves ``models:/`` URIs against a real MLflow registry and records the version it used."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from batch_support import make_classifier_onnx, write_partition

from include.batch.job import BatchConfig, run_batch
from include.registry.registry import register_model, set_alias


@pytest.mark.integration
def test_champion_alias_is_resolved_verified_and_recorded_in_the_manifest(
    tmp_path: Path, tracking_uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODELGATE_HOME", str(tmp_path / "home"))
    onnx_path = make_classifier_onnx(tmp_path / "clf.onnx", seed=11)
    v = register_model("batch-job-test", onnx_path, actor="pytest", tracking_uri=tracking_uri)
    set_alias("batch-job-test", "champion", v.version, actor="pytest", tracking_uri=tracking_uri)
    part = write_partition(tmp_path / "in" / "part-0.parquet", 200)
    out = tmp_path / "out"

    res = run_batch(BatchConfig("models:/batch-job-test@champion", str(part), str(out), progress=False))
    man = json.loads((out / "part-0.manifest.json").read_text())
    assert res[0].status == "scored"
    assert man["model"] == {
        "uri": "models:/batch-job-test@champion",
        "name": "batch-job-test",
        "version": v.version,
        "sha256": v.sha256,
    }
    pinned = run_batch(
        BatchConfig(f"models:/batch-job-test/{v.version}", str(part), str(out), progress=False)
    )
    assert pinned[0].status == "skipped"  # same version and sha256: the manifest is current
