"""``python -m include.drift``: one JSON object on stdout; bad input exits 2 with a one-line message."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from include.drift.__main__ import main
from include.synthetic import FeatureSpec

REPO = Path(__file__).resolve().parents[3]


def _frames(tmp_path: Path, shift: float = 0.0, n: int = 2000) -> tuple[Path, Path]:
    rng = np.random.default_rng(0)
    ref = pd.DataFrame({"a": rng.normal(size=n), "b": rng.exponential(size=n), "c": rng.integers(0, 5, n)})
    cur = pd.DataFrame(
        {"a": rng.normal(shift, size=n), "b": rng.exponential(size=n), "c": rng.integers(0, 5, n)}
    )
    ref.to_parquet(tmp_path / "ref.parquet")
    cur.to_parquet(tmp_path / "cur.parquet")
    return tmp_path / "ref.parquet", tmp_path / "cur.parquet"


def test_cli_prints_exactly_one_json_object_with_every_feature(tmp_path: Path) -> None:
    ref, cur = _frames(tmp_path, shift=0.5)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "include.drift",
            "--reference",
            str(ref),
            "--current",
            str(cur),
            "--alpha",
            "0.01",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert len(proc.stdout.strip().splitlines()) == 1
    out = json.loads(proc.stdout)
    assert set(out) >= {"features", "drift", "n_reference", "n_current"}
    assert (out["n_reference"], out["n_current"], out["drift"]) == (2000, 2000, True)
    assert set(out["features"]) == {"a", "b", "c"}
    for f in out["features"].values():
        assert {"psi", "ks_p", "js", "drift"} <= set(f)
    assert out["features"]["a"]["drift"] and out["features"]["a"]["ks_p"] < 1e-20


def test_cli_with_a_feature_spec_compares_its_features_and_categorical_levels(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ref, cur = _frames(tmp_path)
    frame = pd.read_parquet(ref)
    frame["c"] = frame["c"].map(lambda v: f"level{v}")
    frame.to_parquet(ref)
    cur_frame = pd.read_parquet(cur)
    cur_frame["c"] = cur_frame["c"].map(lambda v: f"level{v}")
    cur_frame.to_parquet(cur)
    FeatureSpec.fit(frame[["a", "c"]]).to_json(tmp_path / "spec.json")
    assert main(["--reference", str(ref), "--current", str(cur), "--spec", str(tmp_path / "spec.json")]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out["features"]) == {"a", "c"} and out["drift"] is False
    assert out["features"]["c"]["ks_p"] is None, "KS is not defined on levels"


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("missing", "reference file"),
        ("no_common", "no common columns"),
        ("empty", "has no rows"),
        ("non_numeric", "column 'a' of current is not numeric"),
        ("not_parquet", "is not a readable Parquet file"),
        ("bad_alpha", "alpha must be between 0 and 1"),
    ],
)
def test_bad_input_exits_non_zero_with_one_clear_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str, message: str
) -> None:
    ref, cur = _frames(tmp_path, n=50)
    alpha = "0.01"
    if case == "missing":
        ref = tmp_path / "nope.parquet"
    elif case == "no_common":
        pd.DataFrame({"x": [1.0, 2.0]}).to_parquet(cur)
    elif case == "empty":
        pd.DataFrame({"a": pd.Series([], dtype=float)}).to_parquet(cur)
    elif case == "non_numeric":
        pd.DataFrame({"a": ["x", "y"], "b": [1.0, 2.0], "c": [1, 2]}).to_parquet(cur)
    elif case == "not_parquet":
        cur.write_text("a,b\n1,2\n")
    elif case == "bad_alpha":
        alpha = "1.5"
    assert main(["--reference", str(ref), "--current", str(cur), "--alpha", alpha]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("error: ") and message in captured.err
    assert len(captured.err.strip().splitlines()) == 1 and "Traceback" not in captured.err
