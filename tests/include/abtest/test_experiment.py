"""Experiment YAML files: the shipped ones validate, bad ones fail with messages naming the problem."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from ab_support import experiment_doc
from support import REPO

from include.abtest.experiment import InvalidExperiment, load_experiment, load_experiments, parse_experiment


def test_every_shipped_experiment_file_validates() -> None:
    files = sorted((REPO / "experiments").glob("*.yaml"))
    assert files
    for f in files:
        exp = load_experiment(f)
        assert exp.id == f.stem
        assert exp.control_name in {v.name for v in exp.variants}
        assert exp.primary.name == exp.metrics[0].name


def test_defaults_control_is_first_variant_and_cuped_applies_to_primary() -> None:
    exp = parse_experiment(experiment_doc(cuped={"path": "cov.parquet", "column": "pre"}))
    assert exp.control_name == "a"
    assert [t.name for t in exp.treatments] == ["b"]
    assert exp.cuped_metrics == ["conversion"]
    assert exp.sequential.enabled and exp.sequential.tuning_parameter == 5000
    assert exp.role("latency") == "guardrail" and exp.role("revenue") == "secondary"
    assert exp.start.tzinfo is not None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"colour": "red"}, "colour: unknown field"),
        ({"variants": [{"name": "a", "weight": 0}, {"name": "b", "weight": 1}]}, "variants.0.weight"),
        ({"variants": [{"name": "a", "weight": 1}]}, "variants: List should have at least 2 items"),
        (
            {"variants": [{"name": "a", "weight": 1}, {"name": "a", "weight": 1}]},
            "variant names repeat: ['a']",
        ),
        ({"control": "zz"}, "control 'zz' is not a variant"),
        ({"alpha": 1.5}, "alpha"),
        (
            {"primary": {"name": "m", "type": "ratio", "numerator": "x"}},
            "a ratio metric needs numerator and denominator",
        ),
        (
            {"primary": {"name": "m", "type": "mean", "source": "events", "column": "cpu"}},
            "event metrics read",
        ),
        ({"outcomes": None}, "metrics read outcomes but no outcomes source is configured"),
        (
            {"cuped": {"path": "c", "column": "p", "metrics": ["latency"]}},
            "CUPED applies to mean and proportion",
        ),
        ({"cuped": {"path": "c", "column": "p", "metrics": ["nope"]}}, "unknown metric 'nope'"),
        ({"unit": "session"}, "unit: Input should be 'unit_id' or 'request_id'"),
        ({"id": "bad id!"}, "id: String should match pattern"),
    ],
)
def test_invalid_experiment_is_refused_with_a_message_naming_the_field(change: dict, message: str) -> None:
    with pytest.raises(InvalidExperiment) as err:
        parse_experiment(experiment_doc(**change), "x.yaml")
    assert message in err.value.message
    assert err.value.message.startswith("x.yaml: ")


def test_file_problems_are_named(tmp_path: Path) -> None:
    with pytest.raises(InvalidExperiment, match="cannot read experiment file"):
        load_experiment(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("id: [unclosed\n")
    with pytest.raises(InvalidExperiment, match="not valid YAML"):
        load_experiment(bad)
    other = tmp_path / "other.yaml"
    other.write_text(yaml.safe_dump(experiment_doc()))
    with pytest.raises(InvalidExperiment, match=r"file name must be the experiment id \(exp-1.yaml\)"):
        load_experiment(other)
    (tmp_path / "list.yaml").write_text("- 1\n")
    with pytest.raises(InvalidExperiment, match="an experiment is a mapping"):
        load_experiment(tmp_path / "list.yaml")


def test_load_experiments_names_every_bad_file_and_filters_inactive(tmp_path: Path) -> None:
    (tmp_path / "exp-1.yaml").write_text(yaml.safe_dump(experiment_doc()))
    (tmp_path / "exp-2.yaml").write_text(yaml.safe_dump(experiment_doc(id="exp-2", active=False)))
    assert [e.id for e in load_experiments(tmp_path)] == ["exp-1"]
    assert [e.id for e in load_experiments(tmp_path, active_only=False)] == ["exp-1", "exp-2"]
    (tmp_path / "exp-3.yaml").write_text(yaml.safe_dump(experiment_doc(id="exp-3", alpha=2)))
    (tmp_path / "exp-4.yaml").write_text(yaml.safe_dump(experiment_doc(id="exp-4", mde=-1)))
    with pytest.raises(InvalidExperiment) as err:
        load_experiments(tmp_path)
    assert "exp-3.yaml: alpha" in err.value.message and "exp-4.yaml: mde" in err.value.message
    with pytest.raises(InvalidExperiment, match="does not exist"):
        load_experiments(tmp_path / "nope")
