"""The streaming batch job: outputs, manifests, idempotency, the feature-column rule, bad input."""

from __future__ import annotations

import hashlib
import json
import logging
import re
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from batch_support import make_classifier_onnx, write_partition

from include.batch.__main__ import EXIT_BAD_INPUT, EXIT_BAD_MODEL, main
from include.batch.columns import ModelInput, load_feature_names, plan_columns
from include.batch.errors import FeatureMismatchError, ProviderUnavailableError
from include.batch.job import BatchConfig, choose_providers, run_batch


def _expected(model: Path, part: Path, features: list[str]) -> dict[str, np.ndarray]:
    t = pq.read_table(part)
    x = np.column_stack([t.column(f).to_numpy() for f in features]).astype(np.float32)
    label, proba = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"]).run(
        None, {"input": x}
    )
    return {"label": label, "probabilities": proba}


def _outputs(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_job_scores_every_partition_with_keys_predictions_and_manifest(
    tmp_path: Path, classifier: Path
) -> None:
    inp = tmp_path / "dt=2026-11-28"
    parts = [
        write_partition(inp / f"part-{i}.parquet", 700 + i * 300, seed=i, row_group_size=256)
        for i in range(2)
    ]
    out = tmp_path / "out"
    results = run_batch(BatchConfig(str(classifier), str(inp), str(out), batch_rows=200, progress=False))

    assert [r.status for r in results] == ["scored", "scored"]
    assert _outputs(out) == [
        "part-0.manifest.json",
        "part-0.parquet",
        "part-1.manifest.json",
        "part-1.parquet",
    ]
    for part in parts:
        src = pq.read_table(part)
        got = pq.read_table(out / part.name)
        assert got.column_names == ["customer_id", "region", "label", "probabilities_0", "probabilities_1"]
        assert got.column("customer_id").to_pylist() == src.column("customer_id").to_pylist()
        assert got.column("region").to_pylist() == src.column("region").to_pylist()
        exp = _expected(classifier, part, ["f00", "f01", "f02", "f03"])
        np.testing.assert_array_equal(got.column("label").to_numpy(), exp["label"])
        np.testing.assert_allclose(
            got.column("probabilities_1").to_numpy(), exp["probabilities"][:, 1], rtol=1e-6
        )
        man = json.loads((out / part.name.replace(".parquet", ".manifest.json")).read_text())
        assert man["schema"] == "modelgate.batch.manifest/1"
        assert man["input"]["rows"] == man["output"]["rows"] == src.num_rows
        assert man["input"]["fingerprint"].startswith("sha256:") and len(man["input"]["fingerprint"]) == 71
        assert man["model"]["sha256"] == hashlib.sha256(classifier.read_bytes()).hexdigest()
        assert man["input"]["fingerprint"] == "sha256:" + hashlib.sha256(part.read_bytes()).hexdigest()
        assert man["features"] == ["f00", "f01", "f02", "f03"]
        assert man["rows_per_s"] > 0 and man["duration_s"] > 0


def test_rerun_with_same_model_and_input_does_nothing_unless_forced(tmp_path: Path, classifier: Path) -> None:
    part = write_partition(tmp_path / "in" / "part-0.parquet", 500)
    out = tmp_path / "out"
    cfg = BatchConfig(str(classifier), str(part), str(out), progress=False)
    run_batch(cfg)
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}

    assert [r.status for r in run_batch(cfg)] == ["skipped"]
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before

    forced = run_batch(BatchConfig(str(classifier), str(part), str(out), force=True, progress=False))
    assert [r.status for r in forced] == ["scored"]
    assert (out / "part-0.manifest.json").stat().st_mtime_ns != before["part-0.manifest.json"]


def test_changed_input_or_model_is_scored_again(tmp_path: Path, classifier: Path) -> None:
    part = write_partition(tmp_path / "in" / "part-0.parquet", 300)
    out = tmp_path / "out"
    run_batch(BatchConfig(str(classifier), str(part), str(out), progress=False))
    write_partition(part, 300, seed=7)  # same name, new content
    assert [
        r.status for r in run_batch(BatchConfig(str(classifier), str(part), str(out), progress=False))
    ] == ["scored"]

    other = make_classifier_onnx(tmp_path / "other.onnx", seed=3)
    res = run_batch(BatchConfig(str(other), str(part), str(out), progress=False))
    assert [r.status for r in res] == ["scored"]
    man = json.loads((out / "part-0.manifest.json").read_text())
    assert man["model"]["uri"] == str(other)


def test_explicit_feature_order_and_feature_spec_decide_the_model_input(
    tmp_path: Path, classifier: Path
) -> None:
    part = write_partition(tmp_path / "in" / "part-0.parquet", 400)
    order = ["f03", "f02", "f01", "f00"]
    run_batch(
        BatchConfig(str(classifier), str(part), str(tmp_path / "a"), features=tuple(order), progress=False)
    )
    got = pq.read_table(tmp_path / "a" / "part-0.parquet").column("probabilities_1").to_numpy()
    np.testing.assert_allclose(got, _expected(classifier, part, order)["probabilities"][:, 1], rtol=1e-6)

    spec = tmp_path / "feature_spec.json"
    spec.write_text(json.dumps({"features": [{"name": n, "kind": "continuous"} for n in order]}))
    assert load_feature_names(spec) == order
    run_batch(BatchConfig(str(classifier), str(part), str(tmp_path / "b"), feature_spec=spec, progress=False))
    got_b = pq.read_table(tmp_path / "b" / "part-0.parquet").column("probabilities_1").to_numpy()
    np.testing.assert_array_equal(got, got_b)


def test_integer_features_are_cast_and_explicit_keys_limit_carried_columns(
    tmp_path: Path, classifier: Path
) -> None:
    rng = np.random.default_rng(1)
    t = pa.table(
        {
            "id": pa.array(np.arange(50, dtype=np.int64)),
            **{f"f{j:02d}": pa.array(rng.integers(-3, 3, 50).astype(np.int32)) for j in range(4)},
            "note": pa.array(["x"] * 50),
        }
    )
    part = tmp_path / "in" / "part-0.parquet"
    part.parent.mkdir()
    pq.write_table(t, part)
    run_batch(BatchConfig(str(classifier), str(part), str(tmp_path / "out"), keys=("id",), progress=False))
    got = pq.read_table(tmp_path / "out" / "part-0.parquet")
    assert got.column_names == ["id", "label", "probabilities_0", "probabilities_1"]
    assert got.column("id").to_pylist() == list(range(50))
    np.testing.assert_allclose(
        got.column("probabilities_1").to_numpy(),
        _expected(classifier, part, ["f00", "f01", "f02", "f03"])["probabilities"][:, 1],
        rtol=1e-6,
    )


def test_default_rule_counts_numeric_non_key_columns_and_names_the_mismatch() -> None:
    schema = pa.schema([("id", pa.int64()), ("a", pa.float32()), ("b", pa.float64()), ("s", pa.string())])
    inputs = [ModelInput("input", np.float32, (None, 2))]
    plan = plan_columns(schema, inputs, source="p.parquet", keys=["id"])
    assert plan.features == ("a", "b") and plan.keys == ("id",)
    with pytest.raises(
        FeatureMismatchError, match=r"p\.parquet: the model's input 'input' takes 2 features but 3"
    ):
        plan_columns(schema, inputs, source="p.parquet")
    with pytest.raises(FeatureMismatchError, match=r"non-numeric type: s \(string\)"):
        plan_columns(schema, inputs, source="p.parquet", features=["a", "s"])
    with pytest.raises(FeatureMismatchError, match=r"both as keys and as features"):
        plan_columns(schema, inputs, source="p.parquet", features=["a", "b"], keys=["a"])
    named = plan_columns(
        schema, [ModelInput("a", np.float32, (None,)), ModelInput("b", np.float64, (None, 1))], source="p"
    )
    assert named.mode == "named" and named.features == ("a", "b") and named.keys == ("id", "s")


def test_cuda_request_without_a_cuda_provider_is_refused_and_auto_falls_back_to_cpu() -> None:
    assert choose_providers("auto", ["CPUExecutionProvider"]) == ["CPUExecutionProvider"]
    assert (
        choose_providers("auto", ["CUDAExecutionProvider", "CPUExecutionProvider"])[0]
        == "CUDAExecutionProvider"
    )
    assert choose_providers("cpu", ["CUDAExecutionProvider", "CPUExecutionProvider"]) == [
        "CPUExecutionProvider"
    ]
    with pytest.raises(ProviderUnavailableError, match="--providers cuda"):
        choose_providers("cuda", ["CPUExecutionProvider"])


def _corrupt(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"PAR1 this is not parquet at all")
    return path


def _nulls(path: Path) -> Path:
    write_partition(path, 10)
    t = pq.read_table(path)
    t = t.set_column(t.schema.get_field_index("f01"), "f01", pa.array([None] + [1.0] * 9, pa.float32()))
    pq.write_table(t, path)
    return path


def _empty(path: Path) -> Path:
    write_partition(path, 0)
    return path


@pytest.mark.parametrize(
    ("make", "extra", "message"),
    [
        (_corrupt, [], r"part-0\.parquet: not a readable Parquet file"),
        (_empty, [], r"part-0\.parquet: empty partition \(0 rows\)"),
        (_nulls, [], r"part-0\.parquet: feature column 'f01' has 1 null value"),
        (
            lambda p: write_partition(p, 10),
            ["--features", "f00,f01,f02,f09"],
            r"part-0\.parquet: missing feature column\(s\) \['f09'\]",
        ),
        (
            lambda p: write_partition(p, 10),
            ["--features", "f00,f01,f02,region"],
            r"part-0\.parquet: feature column\(s\) of a non-numeric type: region \(string\)",
        ),
        (
            lambda p: write_partition(p, 10, n_features=5),
            [],
            r"part-0\.parquet: the model's input 'input' takes 4 features but 5",
        ),
        (
            lambda p: write_partition(p, 10),
            ["--keys", "nope"],
            r"part-0\.parquet: missing key column\(s\) \['nope'\]",
        ),
    ],
    ids=["unreadable", "empty", "nulls", "missing-column", "wrong-type", "feature-count", "missing-key"],
)
def test_bad_input_exits_3_naming_file_and_problem_and_leaves_no_output(
    tmp_path: Path, classifier: Path, capsys: pytest.CaptureFixture[str], make, extra: list[str], message: str
) -> None:
    part = make(tmp_path / "in" / "part-0.parquet")
    out = tmp_path / "out"
    rc = main(
        ["--model-uri", str(classifier), "--input", str(part), "--output", str(out), "--no-progress", *extra]
    )
    err = capsys.readouterr().err
    assert rc == EXIT_BAD_INPUT
    assert re.search(message, err), err
    assert "Traceback" not in err
    assert _outputs(out) == []


def test_missing_input_and_unloadable_model_fail_clearly(
    tmp_path: Path, classifier: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc = main(
        ["--model-uri", str(classifier), "--input", str(tmp_path / "nope"), "--output", str(tmp_path / "o")]
    )
    assert rc == EXIT_BAD_INPUT and "nope: input not found" in capsys.readouterr().err
    part = write_partition(tmp_path / "in" / "part-0.parquet", 10)
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not onnx")
    rc = main(["--model-uri", str(bad), "--input", str(part), "--output", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == EXIT_BAD_MODEL and "onnxruntime cannot load bad.onnx" in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()


def test_without_a_terminal_progress_is_logged_as_structured_lines(
    tmp_path: Path, classifier: Path, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    part = write_partition(tmp_path / "in" / "part-0.parquet", 100)
    with caplog.at_level(logging.INFO, logger="include.batch"):
        run_batch(BatchConfig(str(classifier), str(part), str(tmp_path / "out"), progress=False))
    assert any(r.getMessage().startswith(f"event=scored file={part} rows=100 ") for r in caplog.records)
    assert "rows/s" not in capsys.readouterr().err
    run_batch(BatchConfig(str(classifier), str(part), str(tmp_path / "out2"), progress=True))
    assert "part-0.parquet:" in capsys.readouterr().err  # the tqdm bar
