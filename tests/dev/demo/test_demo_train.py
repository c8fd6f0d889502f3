"""Demo models: files, ONNX signature, fidelity to scikit-learn, quality gap, determinism, CLI."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, roc_auc_score

from include.synthetic import FeatureSpec
from modelgate_dev.demo import DemoError
from modelgate_dev.demo.train import (
    ARTIFACT_FILES,
    FEATURE_NAMES,
    DemoArtifacts,
    fit_estimators,
    make_dataset,
    onnx_predict,
    train_demo_models,
)

REPO = Path(__file__).resolve().parents[3]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_all_demo_files_are_written(demo: DemoArtifacts) -> None:
    assert sorted(p.name for p in demo.out_dir.iterdir()) == sorted(ARTIFACT_FILES)
    assert demo.v1_model.name == "churn-v1.onnx"
    assert demo.v2_model.name == "churn-v2.onnx"
    assert demo.model("v2") == demo.v2_model
    with pytest.raises(DemoError, match="'v1' or 'v2'"):
        demo.model("v3")


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_onnx_signature_is_input_float_30_and_label_probabilities(demo: DemoArtifacts, version: str) -> None:
    session = ort.InferenceSession(str(demo.model(version)), providers=["CPUExecutionProvider"])
    [inp] = session.get_inputs()
    assert inp.name == "input"
    assert inp.type == "tensor(float)"
    assert len(inp.shape) == 2 and not isinstance(inp.shape[0], int) and inp.shape[1] == 30
    outputs = {o.name: o for o in session.get_outputs()}
    assert list(outputs) == ["label", "probabilities"]
    assert outputs["label"].type == "tensor(int64)"
    assert len(outputs["label"].shape) == 1
    assert outputs["probabilities"].type == "tensor(float)"
    assert outputs["probabilities"].shape[1:] == [2]


def test_onnx_outputs_match_sklearn_predict_proba(demo: DemoArtifacts) -> None:
    data = make_dataset(seed=0)
    estimators = fit_estimators(data)
    for version, estimator in estimators.items():
        label, probabilities = onnx_predict(demo.model(version), data.x_holdout)
        expected = estimator.predict_proba(data.x_holdout)
        assert np.abs(probabilities - expected).max() < 1e-5, version
        assert np.array_equal(label, estimator.predict(data.x_holdout)), version
        assert label.dtype == np.int64 and probabilities.dtype == np.float32


def test_v2_beats_v1_on_holdout_auc_by_a_margin(demo: DemoArtifacts) -> None:
    models = demo.metrics["models"]
    assert models["v2"]["auc"] - models["v1"]["auc"] >= 0.03
    assert models["v2"]["accuracy"] > models["v1"]["accuracy"]


def test_metrics_file_matches_onnxruntime_on_holdout(demo: DemoArtifacts) -> None:
    metrics = json.loads(demo.metrics_file.read_text())
    assert metrics == demo.metrics
    assert metrics["metrics_source"] == "onnxruntime"
    holdout = pd.read_parquet(demo.holdout)
    x = holdout[list(FEATURE_NAMES)].to_numpy(np.float32)
    y = holdout["label"].to_numpy()
    for version in ("v1", "v2"):
        entry = metrics["models"][version]
        label, probabilities = onnx_predict(demo.model(version), x)
        assert entry["auc"] == pytest.approx(roc_auc_score(y, probabilities[:, 1]), abs=1e-12)
        assert entry["accuracy"] == pytest.approx(accuracy_score(y, label), abs=1e-12)
        assert entry["sha256"] == _sha(demo.model(version))
        assert entry["file"] == demo.model(version).name
    assert metrics["models"]["v1"]["params"]["logreg.C"] == 1.0
    assert len(metrics["training_data_sha256"]) == 64


def test_holdout_and_reference_frames_have_the_stated_layout(demo: DemoArtifacts) -> None:
    holdout = pd.read_parquet(demo.holdout)
    reference = pd.read_parquet(demo.reference)
    assert list(holdout.columns) == [*FEATURE_NAMES, "label"]
    assert list(reference.columns) == list(FEATURE_NAMES)
    assert (reference.dtypes == np.float32).all()
    assert holdout["label"].dtype == np.int64
    assert set(holdout["label"].unique()) == {0, 1}
    assert len(reference) == 5000
    assert len(holdout) == demo.metrics["n_holdout"] == 5000
    # reference rows are training rows, so none of them is in the holdout
    merged = reference.merge(holdout[list(FEATURE_NAMES)], how="inner")
    assert merged.empty


def test_feature_spec_describes_training_features_and_feeds_the_models(demo: DemoArtifacts) -> None:
    spec = FeatureSpec.from_json(demo.feature_spec)
    assert spec.feature_names == list(FEATURE_NAMES)
    assert spec.n_reference_rows == demo.metrics["n_train"]
    synthetic = spec.sample(5000, seed=1)
    reference = pd.read_parquet(demo.reference)
    assert (synthetic.dtypes == np.float32).all()
    standardized_gap = (synthetic.mean() - reference.mean()).abs() / reference.std()
    assert standardized_gap.max() < 0.15
    for version in ("v1", "v2"):
        _, probabilities = onnx_predict(demo.model(version), synthetic.to_numpy())
        assert np.isfinite(probabilities).all()
        assert np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)


def test_cli_with_same_seed_rewrites_byte_identical_files(demo: DemoArtifacts, tmp_path: Path) -> None:
    out = tmp_path / "again"
    # another hash seed than this process: nothing may depend on set or dict order of strings
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    result = subprocess.run(
        [sys.executable, "-m", "modelgate_dev.demo.train", "--out", str(out), "--seed", "0"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["models"]["v2"]["auc"] == demo.metrics["models"]["v2"]["auc"]
    assert "RuntimeWarning" not in result.stderr
    for name in ARTIFACT_FILES:
        assert _sha(out / name) == _sha(demo.out_dir / name), name


def test_cli_reports_an_output_path_that_is_a_file(tmp_path: Path) -> None:
    target = tmp_path / "occupied"
    target.write_text("x")
    result = subprocess.run(
        [sys.executable, "-m", "modelgate_dev.demo.train", "--out", str(target)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert "exists and is not a folder" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("seed", [-1, 2.5, True])
def test_train_rejects_bad_seeds(tmp_path: Path, seed: object) -> None:
    with pytest.raises(DemoError, match="seed must be"):
        train_demo_models(tmp_path, seed=seed)  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []
