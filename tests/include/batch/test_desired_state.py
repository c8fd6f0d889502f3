"""The nightly batch scores the champion VERSION of the desired routes, not MLflow's alias (issue 13)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pyarrow.parquet as pq
import pytest
from batch_support import make_classifier_onnx, write_partition

from include.batch.champion import champion_from_routes, refuse_alias
from include.batch.errors import BatchModelError
from include.batch.job import BatchConfig, run_batch
from include.registry.registry import get_alias_version, register_model, set_alias
from modelgate_control.store import RouteStore

MODEL = "batch-desired-test"


def _routes(uri: str) -> dict[str, object]:
    return {"variants": [{"name": "champion", "uri": uri, "weight_bp": 10000}], "champion": "champion"}


@pytest.mark.integration
def test_hand_moved_champion_alias_changes_nothing_the_batch_scores(
    tmp_path: Path, tracking_uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODELGATE_HOME", str(tmp_path / "home"))
    first = make_classifier_onnx(tmp_path / "v1.onnx", seed=21)
    second = make_classifier_onnx(tmp_path / "v2.onnx", seed=22)
    v1 = register_model(MODEL, first, actor="pytest", tracking_uri=tracking_uri)
    v2 = register_model(MODEL, second, actor="pytest", tracking_uri=tracking_uri)  # valid sha256 tag
    store_url = f"sqlite:///{tmp_path / 'home' / 'control.db'}"
    store = RouteStore(store_url)
    store.put(MODEL, _routes(f"models:/{MODEL}/{v1.version}"), actor="canary_promotion", reason="test")
    store.dispose()
    # somebody with registry write access moves `champion` by hand to another well-formed version
    set_alias(MODEL, "champion", v2.version, actor="by-hand", tracking_uri=tracking_uri)
    assert get_alias_version(MODEL, "champion", tracking_uri=tracking_uri) == v2.version

    uri = champion_from_routes(MODEL, store_url)
    assert uri == f"models:/{MODEL}/{v1.version}"
    part = write_partition(tmp_path / "in" / "part-0.parquet", 300, seed=5)
    out = tmp_path / "out"
    res = run_batch(BatchConfig(uri, str(part), str(out), progress=False))
    assert res[0].status == "scored"
    man = json.loads((out / "part-0.manifest.json").read_text())
    assert man["model"]["version"] == v1.version and man["model"]["sha256"] == v1.sha256

    # the scores are v1's: computed here with onnxruntime on v1's own file, not by the job
    table = pq.read_table(part)
    x = np.column_stack([table.column(f"f{i:02d}").to_numpy() for i in range(4)]).astype(np.float32)
    session = ort.InferenceSession(str(first), providers=["CPUExecutionProvider"])
    expected = session.run(None, {session.get_inputs()[0].name: x})[1][:, 1]
    got = pq.read_table(out / "part-0.parquet").column("probabilities_1").to_numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    assert not np.allclose(got, _v2_scores(second, x), rtol=1e-3)  # the two versions do score differently


def _v2_scores(path: Path, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return np.asarray(session.run(None, {session.get_inputs()[0].name: x})[1][:, 1])


def test_missing_routes_and_alias_routes_are_refused(tmp_path: Path) -> None:
    store_url = f"sqlite:///{tmp_path / 'control.db'}"
    with pytest.raises(BatchModelError, match="no desired routes"):
        champion_from_routes("nobody", store_url)
    store = RouteStore(store_url)
    store.put("aliased", _routes("models:/aliased@champion"), actor="pytest", reason="test")
    store.dispose()
    with pytest.raises(BatchModelError, match="refusing a mutable alias"):
        champion_from_routes("aliased", store_url)
    with pytest.raises(BatchModelError, match="does not score a mutable alias"):
        refuse_alias("models:/m@champion")
    assert refuse_alias("models:/m/3") == "models:/m/3"
