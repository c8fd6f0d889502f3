"""The registry module against a real MLflow server on loopback."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from support import make_logreg_onnx

from include.registry import audit
from include.registry import registry as reg
from include.registry.errors import IntegrityError, InvalidConf, ModelNotFound
from include.registry.resolve import resolve_model_uri

pytestmark = pytest.mark.integration


def _name() -> str:
    return f"m-{uuid.uuid4().hex[:8]}"


def test_register_writes_the_manifest_and_dedupes_by_sha256(tracking_uri: str, tmp_path: Path) -> None:
    name = _name()
    path = make_logreg_onnx(tmp_path / "a.onnx", seed=1)
    rv = reg.register_model(name, path, actor="alice", residency="eu-west-1", run_id="run-1")
    assert rv.created and rv.version == "1" and rv.semver == "1.0.0"
    client = reg.get_client()
    tags = client.get_model_version(name, "1").tags
    assert tags["modelgate.sha256"] == rv.sha256
    assert tags["modelgate.residency"] == "eu-west-1"
    assert tags["modelgate.approval.state"] == "pending"
    assert tags["modelgate.status"] == "ready"
    again = reg.register_model(name, path, actor="alice")
    assert not again.created and again.version == "1"
    assert len(client.search_model_versions(f"name='{name}'")) == 1
    recs = [r for r in audit.read_records() if r.subject == f"models:/{name}/1"]
    assert [r.action for r in recs] == ["register"]


def test_semver_bumps_minor_for_same_signature_and_major_for_a_new_one(tracking_uri: str, tmp_path: Path) -> None:
    name = _name()
    reg.register_model(name, make_logreg_onnx(tmp_path / "a.onnx", seed=1), actor="a")
    v2 = reg.register_model(name, make_logreg_onnx(tmp_path / "b.onnx", seed=2), actor="a")
    v3 = reg.register_model(name, make_logreg_onnx(tmp_path / "c.onnx", n_features=6, seed=3), actor="a")
    assert (v2.semver, v3.semver) == ("1.1.0", "2.0.0")
    with pytest.raises(InvalidConf, match="needs a major bump"):
        reg.register_model(name, make_logreg_onnx(tmp_path / "d.onnx", n_features=7), actor="a", semver="2.5.0")


def test_aliases_move_only_through_set_alias_and_are_audited(tracking_uri: str, tmp_path: Path) -> None:
    name = _name()
    v1 = reg.register_model(name, make_logreg_onnx(tmp_path / "a.onnx", seed=1), actor="a")
    assert reg.set_alias(name, "champion", v1.version, actor="bob", reason="first")
    assert not reg.set_alias(name, "champion", v1.version, actor="bob"), "no-op when unchanged"
    assert reg.get_alias_version(name, "champion") == "1"
    moves = [r for r in audit.read_records() if r.subject == f"models:/{name}@champion"]
    assert len(moves) == 1 and moves[0].before == {"version": None} and moves[0].actor == "bob"
    with pytest.raises(ModelNotFound):
        reg.set_alias(name, "champion", "99", actor="bob")


def test_failed_audit_after_creation_leaves_no_version(
    tracking_uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = _name()

    def broken_audit(*args: object, **kwargs: object) -> None:
        raise audit.AuditError("audit database unavailable")

    monkeypatch.setattr(reg, "append_audit", broken_audit)
    with pytest.raises(audit.AuditError):
        reg.register_model(name, make_logreg_onnx(tmp_path / "a.onnx"), actor="a")
    assert reg.get_client().search_model_versions(f"name='{name}'") == []


def test_resolve_verifies_sha256_and_refuses_a_tampered_version(tracking_uri: str, tmp_path: Path) -> None:
    name = _name()
    rv = reg.register_model(name, make_logreg_onnx(tmp_path / "a.onnx"), actor="a")
    reg.set_alias(name, "champion", rv.version, actor="a")
    got = resolve_model_uri(f"models:/{name}@champion", cache_dir=tmp_path / "cache")
    assert got.sha256 == rv.sha256 and got.version == "1" and got.path.is_file()
    reg.get_client().set_model_version_tag(name, "1", "modelgate.sha256", "0" * 64)
    with pytest.raises(IntegrityError, match="does not match"):
        resolve_model_uri(f"models:/{name}/1", cache_dir=tmp_path / "cache2")
    assert not (tmp_path / "cache2" / name).exists()
    with pytest.raises(ModelNotFound):
        resolve_model_uri(f"models:/{name}/42", cache_dir=tmp_path / "cache")


def test_feature_spec_is_logged_and_a_broken_one_is_refused_before_anything_is_registered(
    tracking_uri: str, tmp_path: Path
) -> None:
    import mlflow
    import numpy as np
    import pandas as pd

    from include.synthetic import FeatureSpec
    from include.synthetic.errors import SyntheticError

    name = _name()
    frame = pd.DataFrame(np.random.default_rng(0).normal(size=(200, 4)), columns=["a", "b", "c", "d"])
    spec_path = FeatureSpec.fit(frame).to_json(tmp_path / "feature_spec.json")
    rv = reg.register_model(name, make_logreg_onnx(tmp_path / "a.onnx"), actor="a", feature_spec_path=spec_path)
    spec_uri = rv.tags["modelgate.feature_spec"]
    local = mlflow.artifacts.download_artifacts(artifact_uri=spec_uri, dst_path=str(tmp_path / "dl"))
    assert FeatureSpec.from_json(Path(local)).feature_names == ["a", "b", "c", "d"]

    broken = tmp_path / "broken.json"
    broken.write_text('{"version": 1, "features": "nope"}')
    other = _name()
    with pytest.raises(SyntheticError):
        reg.register_model(other, make_logreg_onnx(tmp_path / "b.onnx"), actor="a", feature_spec_path=broken)
    assert reg.get_client().search_model_versions(f"name='{other}'") == []
