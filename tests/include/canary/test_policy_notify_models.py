"""Canary policy files, notification callbacks, route documents and the faulty demo models."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from support import REPO

from include.canary import controller as cc
from include.canary import notify, routeplan
from include.canary.errors import InvalidPolicy
from include.canary.policy import MAX_STAGES, REPO_POLICY_DIR, CanaryPolicy, load_policy
from modelgate_dev.canary.faulty import make_erroring_model, make_shifted_model, make_slow_model


def test_committed_policies_load_and_the_default_has_the_documented_stages() -> None:
    default = load_policy("any-model", REPO_POLICY_DIR / "canary_default.yaml")
    assert default.stages == (1, 5, 25, 50, 100) and default.weights_bp == [100, 500, 2500, 5000, 10000]
    assert default.judge.pass_threshold == 95 and default.judge.marginal_threshold == 75
    demo = load_policy("churn", REPO_POLICY_DIR / "canary_demo.yaml")
    assert demo.bake_seconds <= 30 and demo.stages[-1] == 100 and demo.guard is not None
    latency = next(m for m in demo.judge.metrics if m.name == "latency_ms")
    # the judge tolerates a slower good candidate, and still fails what the live guard would cut
    assert 2.0 < latency.abs_tolerance <= demo.guard["max_latency_excess_ms"]


def test_lookup_prefers_the_models_own_file_then_the_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODELGATE_POLICY_DIR", str(tmp_path))
    monkeypatch.delenv("MODELGATE_CANARY_POLICY", raising=False)
    assert load_policy("churn").source == "<defaults>"
    (tmp_path / "canary_default.yaml").write_text("canary: {bake_seconds: 30}\n")
    (tmp_path / "canary_churn.yaml").write_text("canary: {bake_seconds: 5, stages: [50, 100]}\n")
    assert load_policy("churn").bake_seconds == 5
    assert load_policy("other").bake_seconds == 30
    monkeypatch.setenv("MODELGATE_CANARY_POLICY", str(tmp_path / "canary_default.yaml"))
    assert load_policy("churn").bake_seconds == 30, "MODELGATE_CANARY_POLICY overrides the lookup"


def test_policy_round_trips_through_json() -> None:
    p = load_policy("x", REPO_POLICY_DIR / "canary_demo.yaml")
    back = CanaryPolicy.from_dict(json.loads(json.dumps(p.to_dict())))
    assert back.to_dict() == p.to_dict()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("canary: {stages: [5, 1, 100]}", "increasing percentages"),
        ("canary: {stages: [5, 50]}", "the last stage must be 100"),
        ("canary: {stages: [1, 2, 3, 4, 5, 6, 100]}", f"1 to {MAX_STAGES} percentages"),
        ("canary: {bake: 5}", "unknown keys ['bake']"),
        ("canary: {on_rollback: slack}", "'package.module:function'"),
        ("canary: {judge: {pass_threshold: 200}}", "marginal_threshold <= pass_threshold <= 100"),
        ("canary: [1, 2]", "must be a mapping"),
        ("canary: {stages: [a]}", "stages must be a list of numbers"),
    ],
)
def test_bad_policy_files_are_refused_naming_the_file_and_the_problem(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(text + "\n")
    with pytest.raises(InvalidPolicy) as e:
        load_policy("churn", path)
    assert message in e.value.message and (str(path) in e.value.message or "policy" in e.value.message)


def test_missing_policy_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(InvalidPolicy, match="does not exist"):
        load_policy("churn", tmp_path / "nope.yaml")


def test_dag_has_one_stage_slot_per_possible_stage() -> None:
    tree = ast.parse((REPO / "dags" / "canary_promotion.py").read_text())
    slots = next(
        n.value.value
        for n in tree.body
        if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "") == "STAGE_SLOTS"
    )
    assert slots == MAX_STAGES


def test_notify_calls_the_callable_and_never_raises(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "n.jsonl"
    monkeypatch.setenv("MODELGATE_CANARY_NOTIFY_FILE", str(out))
    assert notify.notify("include.canary.notify:append_jsonl", {"event": "rollback", "model": "m"}) is None
    assert json.loads(out.read_text()) == {"event": "rollback", "model": "m"}
    assert "not allowed" in (notify.notify("no_such_pkg.mod:fn", {}) or "")
    monkeypatch.setenv("MODELGATE_CANARY_CALLBACKS", "no_such_pkg.mod:fn, include.canary.notify:nope")
    assert "cannot import" in (notify.notify("no_such_pkg.mod:fn", {}) or "")
    assert "has no callable 'nope'" in (notify.notify("include.canary.notify:nope", {}) or "")
    assert notify.notify(None, {}) is None


def test_desired_routes_keep_salt_and_shadow_and_compare_by_variants() -> None:
    current = {
        "salt": "s1",
        "shadow": {"variant": "sh", "uri": "/x.onnx", "percent": 5},
        "variants": [{"name": "champion", "uri": "models:/m/1", "weight_bp": 10000}],
    }
    want = cc.desired_routes(current, "m", "1", "2", 500, None)
    assert want["salt"] == "s1" and want["shadow"] == current["shadow"] and want["champion"] == "champion"
    assert [(v["name"], v["uri"], v["weight_bp"]) for v in want["variants"]] == [
        ("champion", "models:/m/1", 9500),
        ("canary", "models:/m/2", 500),
    ]
    assert routeplan.same_routes(dict(want, revision=3), want)
    assert not routeplan.same_routes(current, want)
    assert routeplan.canary_weight(want, "2") == 500 and routeplan.canary_weight(want, "3") is None


def _run(path: Path, x: np.ndarray) -> list[np.ndarray]:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"input": x})


def test_faulty_models_behave_as_documented(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 30)).astype(np.float32)
    base = _run(make_shifted_model(tmp_path / "a.onnx", seed=1, graph_name="a"), x)[1][:, 1]
    same = _run(make_shifted_model(tmp_path / "b.onnx", seed=1, graph_name="b"), x)[1][:, 1]
    assert (tmp_path / "a.onnx").read_bytes() != (tmp_path / "b.onnx").read_bytes()
    assert np.array_equal(base, same)
    shifted = _run(make_shifted_model(tmp_path / "c.onnx", seed=1, shift=2.0), x)[1][:, 1]
    assert np.median(shifted) - np.median(base) > 0.2

    err = tmp_path / "e.onnx"
    make_erroring_model(err, threshold=0.0)
    assert _run(err, np.zeros((3, 30), np.float32))[1].shape == (3, 2), "warm-up zeros pass"
    ok_row = x[x[:, 0] <= 0][:1]
    assert _run(err, ok_row)[1].shape == (1, 2)
    with pytest.raises(Exception, match="Gather"):
        _run(err, x[x[:, 0] > 0][:1])


def test_slow_model_takes_about_the_asked_time_per_call_and_predicts_like_the_linear_model(
    tmp_path: Path,
) -> None:
    path = make_slow_model(tmp_path / "s.onnx", target_ms=4.0, seed=1)
    x = np.random.default_rng(1).normal(size=(1, 30)).astype(np.float32)
    sess = ort.InferenceSession(str(path), sess_options=_one_thread(), providers=["CPUExecutionProvider"])
    import time

    sess.run(None, {"input": x})
    times = []
    for _ in range(20):
        t = time.perf_counter()
        out = sess.run(None, {"input": x})
        times.append((time.perf_counter() - t) * 1000)
    assert 2.0 < float(np.median(times)) < 20.0, times
    ref = _run(make_shifted_model(tmp_path / "r.onnx", seed=1), x)[1]
    assert np.allclose(out[1], ref, atol=1e-6)


def _one_thread() -> ort.SessionOptions:
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    return so


@pytest.mark.parametrize("name", ["/etc/passwd", "../policies/canary_demo", "canary_demo.yaml", "", "a b"])
def test_a_dag_conf_names_a_policy_and_never_passes_a_path(name: str) -> None:
    from include.canary.policy import policy_by_name

    with pytest.raises(InvalidPolicy, match="not a path"):
        policy_by_name(name)


def test_a_policy_name_resolves_inside_the_policy_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    from include.canary.policy import policy_by_name

    monkeypatch.delenv("MODELGATE_POLICY_DIR", raising=False)
    assert policy_by_name("canary_demo") == REPO_POLICY_DIR / "canary_demo.yaml"
    with pytest.raises(InvalidPolicy, match="no canary policy named 'canary_nope'"):
        policy_by_name("canary_nope")


def test_callbacks_outside_the_allow_list_are_refused_before_import(monkeypatch: pytest.MonkeyPatch) -> None:
    from include.canary.notify import load_callable

    monkeypatch.delenv("MODELGATE_CANARY_CALLBACKS", raising=False)
    with pytest.raises(InvalidPolicy, match="not allowed"):
        load_callable("os:system")
    assert callable(load_callable("include.canary.notify:log_event"))
    monkeypatch.setenv("MODELGATE_CANARY_CALLBACKS", "json:dumps")
    assert load_callable("json:dumps") is json.dumps
