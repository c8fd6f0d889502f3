from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from support import make_logreg_onnx

from include.registry.artifact import fetch_artifact, sha256_file
from include.registry.errors import ArtifactNotFound, ArtifactTooLarge, InvalidModel
from include.registry.signature import Signature, validate_onnx


def test_signature_of_a_valid_model_is_typed_and_round_trips(logreg_onnx: Path) -> None:
    sig = validate_onnx(logreg_onnx, max_bytes=10**7)
    assert [(t.name, t.dtype, t.shape) for t in sig.inputs] == [("input", "float32", (None, 4))]
    assert [(t.name, t.dtype, t.shape) for t in sig.outputs] == [("probabilities", "float32", (None, 2))]
    assert Signature.from_json(sig.to_json()) == sig


def test_signature_json_differs_when_the_input_width_changes(tmp_path: Path) -> None:
    a = validate_onnx(make_logreg_onnx(tmp_path / "a.onnx", n_features=4), 10**7)
    b = validate_onnx(make_logreg_onnx(tmp_path / "b.onnx", n_features=5), 10**7)
    assert a.to_json() != b.to_json()


def test_a_file_that_is_not_onnx_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "model.onnx"
    bad.write_bytes(b"this is not a protobuf at all" * 10)
    with pytest.raises(InvalidModel, match=r"not a valid ONNX model"):
        validate_onnx(bad, 10**7)


def test_an_empty_file_is_refused(tmp_path: Path) -> None:
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    with pytest.raises(InvalidModel, match="empty"):
        validate_onnx(empty, 10**7)


def test_a_model_over_the_size_limit_is_refused(logreg_onnx: Path) -> None:
    with pytest.raises(ArtifactTooLarge, match="over the limit"):
        validate_onnx(logreg_onnx, max_bytes=10)


def test_sequence_outputs_are_refused_with_a_hint(tmp_path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper

    seq = helper.make_tensor_sequence_value_info("out", TensorProto.FLOAT, None)
    graph = helper.make_graph(
        [helper.make_node("SequenceConstruct", ["x"], ["out"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 2])],
        [seq],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path / "seq.onnx"
    onnx.save(model, str(path))
    with pytest.raises(InvalidModel, match="not a tensor"):
        validate_onnx(path, 10**7)


def test_fetch_copies_local_files_and_file_urls_and_hash_matches_hashlib(logreg_onnx: Path, tmp_path: Path) -> None:
    a = fetch_artifact(str(logreg_onnx), tmp_path / "a", 10**7)
    b = fetch_artifact(logreg_onnx.as_uri(), tmp_path / "b", 10**7)
    expected = hashlib.sha256(logreg_onnx.read_bytes()).hexdigest()
    assert sha256_file(a) == sha256_file(b) == expected
    assert not list((tmp_path / "a").glob(".fetch-*")), "no temporary file left behind"


def test_fetch_of_a_missing_file_names_it(tmp_path: Path) -> None:
    with pytest.raises(ArtifactNotFound, match=r"does-not-exist\.onnx"):
        fetch_artifact(str(tmp_path / "does-not-exist.onnx"), tmp_path / "out", 10**7)


def test_fetch_of_an_unreachable_url_is_a_clear_error(tmp_path: Path) -> None:
    from support import free_port

    with pytest.raises(ArtifactNotFound, match="could not fetch"):
        fetch_artifact(f"http://127.0.0.1:{free_port()}/m.onnx", tmp_path / "out", 10**7)
    assert not list((tmp_path / "out").iterdir())
