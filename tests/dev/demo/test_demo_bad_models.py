"""Broken demo models behave as described when loaded and run in onnxruntime."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from google.protobuf.message import DecodeError
from onnxruntime.capi.onnxruntime_pybind11_state import InvalidArgument, InvalidProtobuf

from modelgate_dev.demo import BAD_MODEL_KINDS, DemoError, make_bad_model
from modelgate_dev.demo.models import make_nan_output_model, make_wrong_signature_model


def _session(path: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def test_wrong_signature_model_takes_29_features_and_rejects_30(tmp_path: Path) -> None:
    path = make_bad_model(tmp_path / "wrong.onnx", "wrong_signature")
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    session = _session(path)
    [inp] = session.get_inputs()
    assert (inp.name, inp.type, inp.shape[1]) == ("input", "tensor(float)", 29)
    x = np.random.default_rng(0).normal(size=(8, 29)).astype(np.float32)
    label, probabilities = session.run(["label", "probabilities"], {"input": x})
    assert label.shape == (8,) and probabilities.shape == (8, 2)
    with pytest.raises(InvalidArgument, match="invalid dimensions"):
        session.run(None, {"input": np.zeros((8, 30), np.float32)})


def test_wrong_signature_width_is_configurable(tmp_path: Path) -> None:
    session = _session(make_wrong_signature_model(tmp_path / "w.onnx", n_features=12))
    assert session.get_inputs()[0].shape[1] == 12


def test_nan_model_has_demo_signature_and_outputs_nan_where_f00_is_negative(tmp_path: Path) -> None:
    path = make_bad_model(tmp_path / "nan.onnx", "nan_output")
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    session = _session(path)
    [inp] = session.get_inputs()
    assert (inp.name, inp.type, inp.shape[1]) == ("input", "tensor(float)", 30)
    assert [(o.name, o.type) for o in session.get_outputs()] == [
        ("label", "tensor(int64)"),
        ("probabilities", "tensor(float)"),
    ]
    x = np.random.default_rng(1).normal(size=(1000, 30)).astype(np.float32)
    _, probabilities = session.run(["label", "probabilities"], {"input": x})
    negative = x[:, 0] < 0
    assert negative.any() and (~negative).any()
    assert np.isnan(probabilities[negative]).all()
    assert np.isfinite(probabilities[~negative]).all()
    assert np.allclose(probabilities[~negative].sum(axis=1), 1.0, atol=1e-6)


def test_nan_feature_index_is_configurable_and_checked(tmp_path: Path) -> None:
    session = _session(make_nan_output_model(tmp_path / "n.onnx", nan_feature=5))
    x = np.ones((4, 30), np.float32)
    x[1, 5] = -1.0
    x[2, 0] = -1.0
    _, probabilities = session.run(["label", "probabilities"], {"input": x})
    assert np.isnan(probabilities[1]).all()
    assert np.isfinite(probabilities[[0, 2, 3]]).all()
    with pytest.raises(DemoError, match="column index"):
        make_nan_output_model(tmp_path / "bad.onnx", nan_feature=30)


@pytest.mark.parametrize("kind", ["not_onnx", "truncated"])
def test_corrupt_files_do_not_load(tmp_path: Path, kind: str) -> None:
    path = make_bad_model(tmp_path / f"{kind}.onnx", kind)  # type: ignore[arg-type]
    assert path.stat().st_size > 0
    with pytest.raises(InvalidProtobuf, match="Protobuf parsing failed"):
        _session(path)
    with pytest.raises(DecodeError):
        onnx.load(str(path))


def test_every_kind_is_buildable_and_unknown_kind_is_rejected(tmp_path: Path) -> None:
    for kind in BAD_MODEL_KINDS:
        assert make_bad_model(tmp_path / f"{kind}.onnx", kind).exists()
    with pytest.raises(DemoError, match="unknown bad-model kind 'nope'"):
        make_bad_model(tmp_path / "x.onnx", "nope")  # type: ignore[arg-type]
