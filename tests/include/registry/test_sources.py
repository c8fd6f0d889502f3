"""Registration reads artifacts only from the inbox, the MLflow artifact store and configured roots."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from include.registry.errors import InvalidConf, SourceRefused
from include.registry.request import RegistrationRequest
from include.registry.sources import check_source, inbox


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MODELGATE_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("MODELGATE_REGISTRATION_ROOTS", raising=False)
    return tmp_path / "home"


@pytest.mark.parametrize(
    "uri",
    [
        "/etc/passwd",
        "file:///etc/passwd",
        "http://127.0.0.1:1/x",
        "https://example.com/m.onnx",
        "s3://bucket/m.onnx",
        "file://otherhost/inbox/m.onnx",
        "../../etc/passwd",
        "~/.ssh/id_rsa",
        "ftp://127.0.0.1/m.onnx",
        "",
    ],
)
def test_sources_outside_the_roots_are_refused_with_the_allowed_roots_named(home: Path, uri: str) -> None:
    with pytest.raises(SourceRefused) as e:
        check_source(uri)
    assert isinstance(e.value, InvalidConf)
    if uri:
        assert repr(uri) in e.value.message and str(home / "inbox") in e.value.message
        assert "MODELGATE_REGISTRATION_ROOTS" in e.value.message


def test_the_inbox_the_artifact_store_and_relative_names_are_allowed(home: Path) -> None:
    f = inbox() / "m.onnx"
    f.write_bytes(b"x")
    assert check_source(str(f)).location == str(f.resolve())
    assert check_source(f.as_uri()).location == str(f.resolve())
    assert check_source("m.onnx").location == str(f.resolve()), "a relative name is taken inside the inbox"
    assert check_source("runs:/abc/model/model.onnx").kind == "mlflow"
    assert check_source("mlflow-artifacts:/1/abc/artifacts/m.onnx").kind == "mlflow"


def test_a_symlink_in_the_inbox_to_a_file_outside_is_refused(home: Path) -> None:
    link = inbox() / "passwd.onnx"
    os.symlink("/etc/passwd", link)
    with pytest.raises(SourceRefused, match="outside the allowed roots"):
        check_source(str(link))


def test_more_roots_come_from_one_setting(home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    models = tmp_path / "models"
    models.mkdir()
    monkeypatch.setenv("MODELGATE_REGISTRATION_ROOTS", f"{models}, https://Models.Example.com/onnx")
    assert check_source(str(models / "a.onnx")).kind == "path"
    assert check_source("https://models.example.com/onnx/a.onnx").kind == "url"
    for bad in ("https://models.example.com/other/a.onnx", "https://models.example.com/onnx/../x",
                "https://models.example.com:8443/onnx/a.onnx", "http://models.example.com/onnx/a.onnx",
                "https://models.example.com.evil.org/onnx/a.onnx", "https://x@evil.org/onnx/a.onnx",
                str(tmp_path / "modelsX" / "a.onnx")):
        with pytest.raises(SourceRefused):
            check_source(bad)


def test_a_relative_root_in_the_setting_is_a_clear_error(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELGATE_REGISTRATION_ROOTS", "models/")
    with pytest.raises(SourceRefused, match="must be an absolute directory"):
        check_source("m.onnx")


def test_conf_actor_is_refused_because_the_actor_is_the_authenticated_user() -> None:
    with pytest.raises(InvalidConf, match="authenticated user"):
        RegistrationRequest.from_conf({"model_name": "churn", "artifact_uri": "m.onnx", "actor": "ceo"})
