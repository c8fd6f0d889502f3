"""Policy loading: defaults, per-model overrides, and clear errors for bad files."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from support import REPO

from include.regression.errors import PolicyError
from include.regression.policy import Policy, load_policy


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    shutil.copy(REPO / "policies" / "default.yaml", tmp_path / "default.yaml")
    return tmp_path


def test_repository_defaults_equal_the_documented_code_defaults() -> None:
    loaded = load_policy("no-such-model", REPO / "policies")
    assert loaded.sources == ["default.yaml"]
    assert loaded.to_dict() == {**Policy().to_dict(), "sources": ["default.yaml"]}


def test_model_file_overrides_single_keys_and_keeps_the_other_defaults(folder: Path) -> None:
    (folder / "churn.yaml").write_text(
        "agreement:\n  min_rate: 0.7\nquality:\n  holdout_uri: /data/h.parquet\n"
    )
    p = load_policy("churn", folder)
    assert p.agreement.min_rate == 0.7 and p.quality.holdout_uri == "/data/h.parquet"
    assert p.quality.max_auc_drop == 0.005 and p.distribution.max_psi == 0.10
    assert p.sources == ["default.yaml", "churn.yaml"]
    assert p.sha256() != load_policy("other", folder).sha256()


def test_policy_dir_comes_from_the_environment(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (folder / "m.yaml").write_text("latency:\n  runs: 42\n")
    monkeypatch.setenv("MODELGATE_POLICY_DIR", str(folder))
    assert load_policy("m").latency.runs == 42


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("agreement:\n  min_rate: [0.7\n", "not valid YAML at line"),
        ("agreement:\n  min_rat: 0.7\n", "agreement.min_rat: Extra inputs are not permitted"),
        ("agreement:\n  min_rate: 1.5\n", "agreement.min_rate: Input should be less than or equal to 1"),
        ("latency:\n  runs: many\n", "latency.runs: Input should be a valid integer"),
        ("- just\n- a list\n", "must be a mapping"),
        ("sources: [x]\n", "'sources' is set by the loader"),
        ("outputs:\n  classes: [1, 1]\n", "distinct integers"),
    ],
)
def test_bad_model_policy_fails_with_the_file_and_the_problem(folder: Path, text: str, message: str) -> None:
    (folder / "bad.yaml").write_text(text)
    with pytest.raises(PolicyError, match=r"bad\.yaml") as e:
        load_policy("bad", folder)
    assert message in e.value.message


def test_missing_default_policy_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="default regression policy is missing"):
        load_policy("m", tmp_path)


# canary_*.yaml in the same folder belong to canary_promotion, not to this loader
REGRESSION_FILES = sorted(p for p in (REPO / "policies").glob("*.yaml") if not p.name.startswith("canary"))


@pytest.mark.parametrize("path", REGRESSION_FILES, ids=lambda p: p.name)
def test_every_committed_policy_file_is_valid(path: Path) -> None:
    p = load_policy(path.stem, REPO / "policies")
    assert p.sources[-1] == path.name


def test_holdout_uri_expands_environment_variables(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from include.regression.pipeline import _holdout_path

    monkeypatch.setenv("MODELGATE_HOME", str(tmp_path))
    uri = load_policy("churn", REPO / "policies").quality.holdout_uri
    assert uri is not None
    # A path-like holdout never touches the tracking server: the URI given is unreachable.
    got = _holdout_path(uri, tmp_path, "http://127.0.0.1:9")
    assert got == tmp_path / "demo" / "models" / "holdout.parquet"
